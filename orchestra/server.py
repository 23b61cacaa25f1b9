"""``orchestra server local|web|worker|scheduler``.

Local mode starts the web server in this process and a Celery worker and
Celery beat as child processes, all on the same SQLite database and
SQLite-backed broker, so nothing else has to be installed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings

from executions.models import Worker, WorkerState
from flows.models import Flow, save_flow
from flows.spec import parse_flow


def register(group) -> None:
    server = group("server", "run Orchestra's processes")
    p = server.add_parser(
        "local", help="web + worker + scheduler on this machine, example flows loaded"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--concurrency", type=int, default=8, help="tasks run at once by the worker"
    )
    p.add_argument(
        "--no-examples", action="store_true", help="do not deploy the example flows"
    )
    p.set_defaults(func=local)

    p = server.add_parser(
        "web",
        help="the web dashboard and REST API (gunicorn)",
        description="Serves the dashboard and API with gunicorn: WORKERS processes of "
        "THREADS threads each. Each thread holds at most one database connection, so "
        "the server never opens more than WORKERS x THREADS. Needs ALLOWED_HOSTS "
        "and CSRF_TRUSTED_ORIGINS.",
    )
    p.add_argument("--host", default=os.environ.get("ORCHESTRA_WEB_HOST", "127.0.0.1"))
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("ORCHESTRA_WEB_PORT", "8080"))
    )
    p.add_argument(
        "--workers",
        type=_positive,
        default=os.environ.get("ORCHESTRA_WEB_WORKERS", "2"),
        help="processes (ORCHESTRA_WEB_WORKERS, default 2: one per core of a "
        "2-core machine)",
    )
    p.add_argument(
        "--threads",
        type=_positive,
        default=os.environ.get("ORCHESTRA_WEB_THREADS", "8"),
        help="threads per process (ORCHESTRA_WEB_THREADS, default 8)",
    )
    p.add_argument(
        "--timeout",
        type=_positive,
        default=os.environ.get("ORCHESTRA_WEB_TIMEOUT", "60"),
        help="seconds a silent worker may take before gunicorn restarts it",
    )
    p.set_defaults(func=web)

    p = server.add_parser(
        "worker", help="a Celery worker running tasks (any number, any machine)"
    )
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument(
        "--pool", default=None, help="Celery pool: prefork (default), threads, solo"
    )
    p.add_argument("--queues", default=None)
    p.set_defaults(func=worker)

    p = server.add_parser(
        "scheduler", help="Celery beat: schedules, liveness and SLA sweeps"
    )
    p.set_defaults(func=scheduler)


def ensure_database() -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def ensure_admin() -> tuple[str, str | None]:
    """Create the first user in local mode; return (username, password or None)."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    password_file = Path(settings.ORCHESTRA_HOME) / "admin-password"
    if User.objects.exists():
        return (
            "admin",
            password_file.read_text().strip() if password_file.exists() else None,
        )
    password = os.environ.get("ORCHESTRA_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    User.objects.create_superuser("admin", "admin@localhost", password)
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    return "admin", password


EXAMPLES_ACTOR = "examples"


def deploy_examples() -> tuple[int, list[str]]:
    """Deploy the example flows a user has not made their own.

    An example is saved when its flow does not exist yet or its latest
    revision is still the examples' own; a flow someone edited (or deleted)
    is left alone — a restart must not put the example back over their work.
    Returns the number saved and one line per flow skipped, saying why.
    """
    folder = Path(settings.BASE_DIR) / "examples" / "flows"
    count, skipped = 0, []
    for path in sorted(folder.glob("*.y*ml")):
        source = path.read_text()
        spec = parse_flow(source)
        flow = Flow.objects.filter(namespace=spec.namespace, flow_id=spec.id).first()
        if flow is not None:
            latest = flow.revisions.filter(revision=flow.revision).first()
            name = f"{spec.namespace}.{spec.id}"
            if flow.deleted:
                skipped.append(f"{name} (deleted by a user)")
                continue
            if latest is not None and latest.created_by != EXAMPLES_ACTOR:
                by = latest.created_by or "someone"
                skipped.append(f"{name} (revision {latest.revision} by {by})")
                continue
        save_flow(source, actor=EXAMPLES_ACTOR)
        count += 1
    return count, skipped


def _link_host(host: str) -> str:
    """The host links in emails name: a wildcard bind is reached on loopback."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


# -P: the working directory is not put on sys.path (see orchestra/celery_main.py).
CELERY = ("-P", "-m", "orchestra.celery_main")


def _celery(*args: str) -> list[str]:
    return [sys.executable, *CELERY, *args]


def _quiet_celery(*args: str) -> list[str]:
    """Celery without its start-up banners: local mode prints its own summary."""
    return [sys.executable, *CELERY, "--quiet", *args]


def local(args: argparse.Namespace) -> int:
    ensure_database()
    user, password = ensure_admin()
    examples, skipped = (0, []) if args.no_examples else deploy_examples()
    env = {**os.environ, "ORCHESTRA_HOME": str(settings.ORCHESTRA_HOME)}
    if "ORCHESTRA_BASE_URL" not in os.environ:
        # Links in emails (sent by the worker and the scheduler) point at the
        # port this server listens on, not the default one.
        base = f"http://{_link_host(args.host)}:{args.port}"
        env["ORCHESTRA_BASE_URL"] = settings.ORCHESTRA_BASE_URL = base
    started = time.time()
    commands = {
        "worker": _quiet_celery(
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(args.concurrency),
            "--loglevel",
            "WARNING",
            "--hostname",
            "local@%h",
            "--without-gossip",
            "--without-mingle",
        ),
        "scheduler": _quiet_celery(
            "beat",
            "--loglevel",
            "WARNING",
            "--schedule",
            settings.CELERY_BEAT_SCHEDULE_FILENAME,
        ),
    }
    children = [subprocess.Popen(command, env=env) for command in commands.values()]
    supervisor = _Supervisor(commands, children, env)

    def stop(*_):
        raise KeyboardInterrupt

    # From here on, every way out (Ctrl-C, SIGTERM, a failed start) stops the
    # worker and the scheduler: no orphans left polling the data folder.
    # SIGINT gets our handler too: a process started with SIGINT ignored (a
    # background job of a script, some CI launchers) would otherwise keep
    # Python from turning Ctrl-C into KeyboardInterrupt, and never stop.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if not _wait_for_worker(children[0], started):
            print(
                "orchestra: the worker did not start; see its output above",
                file=sys.stderr,
            )
            return 1
        url = f"http://{args.host}:{args.port}"
        print(
            f"Orchestra is starting in local mode (data in {settings.ORCHESTRA_HOME})"
        )
        print(f"  web:       {url}")
        if password:
            print(f"  login:     {user} / {password}")
        else:
            print(
                f"  login:     {user} (password in "
                f"{Path(settings.ORCHESTRA_HOME) / 'admin-password'})"
            )
        print(f"  examples:  {examples} flows deployed (orchestra flows list)")
        for line in skipped:
            print(f"             kept your edit of {line}; example not deployed")
        print(
            "  worker and scheduler running; press Ctrl-C to stop everything",
            flush=True,
        )
        supervisor.start()
        _allow_local_host(args.host)
        _serve(args.host, args.port)
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stopping.set()
        with supervisor.lock:
            _stop(children)
    return 0


class _Supervisor(threading.Thread):
    """Restarts the worker or scheduler when it dies (killed, out of memory).

    A new worker runs the liveness sweep, which finds the task runs the dead
    one held and re-queues or fails them: nothing stays RUNNING for ever.
    """

    def __init__(
        self,
        commands: dict[str, list[str]],
        children: list[subprocess.Popen],
        env: dict[str, str],
    ):
        super().__init__(name="orchestra-supervisor", daemon=True)
        self.commands = commands
        self.children = children  # same order as commands; replaced in place
        self.env = env
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            with self.lock:
                if self.stopping.is_set():
                    return
                for index, name in enumerate(self.commands):
                    code = self.children[index].poll()
                    if code is None:
                        continue
                    print(
                        f"orchestra: the {name} exited (code {code}); starting it again",
                        file=sys.stderr,
                        flush=True,
                    )
                    self.children[index] = subprocess.Popen(
                        self.commands[name], env=self.env
                    )


def _wait_for_worker(
    worker: subprocess.Popen, since: float, timeout: float = 60
) -> bool:
    """Announce "running" only once the worker has registered: a flow executed
    right after start is then picked up, and a worker that cannot start is
    reported instead of leaving the web server up with nobody to run tasks."""
    from datetime import UTC, datetime

    since_at = datetime.fromtimestamp(since - 1, tz=UTC)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            return False
        if Worker.objects.filter(
            state=WorkerState.ALIVE, started_at__gte=since_at
        ).exists():
            return True
        time.sleep(0.2)
    return False


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 10
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _allow_local_host(host: str) -> None:
    """Local mode answers the name it was started on, besides localhost."""
    if "ALLOWED_HOSTS" in os.environ or host in settings.ALLOWED_HOSTS:
        return
    if host in ("0.0.0.0", "::"):
        print(
            "  other machines reach this server only by a name listed in "
            "ALLOWED_HOSTS (e.g. ALLOWED_HOSTS=my-laptop.lan)",
            flush=True,
        )
        return
    settings.ALLOWED_HOSTS.append(host)


def _serve(host: str, port: int) -> None:
    from django.core.management import call_command

    # Local mode is the development server by design; our own start-up lines
    # already say so, its long warning would only bury them.
    os.environ.setdefault("DJANGO_RUNSERVER_HIDE_WARNING", "true")
    call_command(
        "runserver",
        f"{host}:{port}",
        use_reloader=False,
        use_threading=True,
        skip_checks=True,
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def gunicorn_command(args: argparse.Namespace) -> list[str]:
    """gunicorn with threaded workers; the bound on threads is the bound on
    database connections (one per thread, CONN_MAX_AGE keeps it)."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "orchestra.wsgi:application",
        "--bind",
        f"{args.host}:{args.port}",
        "--worker-class",
        "gthread",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--timeout",
        str(args.timeout),
        "--graceful-timeout",
        "30",
        # A connection whose request has not arrived after this long is
        # closed (gunicorn's guard against slow clients holding threads).
        "--keep-alive",
        os.environ.get("ORCHESTRA_WEB_KEEPALIVE", "5"),
        # gunicorn's control socket would be one fixed path per OS user,
        # shared by every server on the machine: not wanted.
        "--no-control-socket",
        "--access-logfile",
        "-",
        "--forwarded-allow-ips",
        os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
    ]


def web(args: argparse.Namespace) -> int:
    from orchestra.security import web_settings_problems

    problems = web_settings_problems()
    if problems:
        print("orchestra: the web server will not start:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print(
            "  (local mode, orchestra server local, needs neither: it answers only "
            "on this machine)",
            file=sys.stderr,
        )
        return 2
    ensure_database()
    # Live follows hold a thread each: never more than half of all threads.
    os.environ.setdefault(
        "ORCHESTRA_SSE_MAX_STREAMS", str(max(1, args.workers * args.threads // 2))
    )
    # The migration check's connection would survive exec (libpq's socket is
    # inherited) and be held for ever by gunicorn's master and every worker.
    from django.db import connections

    connections.close_all()
    cmd = gunicorn_command(args)
    os.execvp(cmd[0], cmd)
    return 0


def worker(args: argparse.Namespace) -> int:
    cmd = _celery("worker", "--loglevel", "INFO")
    if args.concurrency:
        cmd += ["--concurrency", str(args.concurrency)]
    if args.pool:
        cmd += ["--pool", args.pool]
    if args.queues:
        cmd += ["--queues", args.queues]
    os.execvp(cmd[0], cmd)
    return 0


def scheduler(args: argparse.Namespace) -> int:
    cmd = _celery(
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        settings.CELERY_BEAT_SCHEDULE_FILENAME,
    )
    os.execvp(cmd[0], cmd)
    return 0
