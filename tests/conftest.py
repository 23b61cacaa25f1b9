"""Shared fixtures: real services, a real Celery worker, flows, personas."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
from django.conf import settings
from django.db import connection

from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution

ROOT = Path(__file__).resolve().parent.parent
REQUIRE = os.environ.get("ORCHESTRA_REQUIRE_SERVICES") == "1"


# A test gets the marker of the kind of process it starts from the fixtures it
# uses (directly or through other fixtures), so a new test cannot forget it:
# `-m "not worker"`, `-m "not subprocess and not browser"` pick the fast ones.
MARKER_OF_FIXTURE = {
    "start_worker": "worker",  # a real Celery worker process
    "cli": "subprocess",  # the `orchestra` console script
    "cli_on_test_db": "subprocess",
    "local_server": "subprocess",  # `orchestra server local` and its children
    "browser": "browser",  # Chromium through Playwright
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads xdist_group marks
def pytest_collection_modifyitems(items):
    for item in items:
        names = getattr(item, "fixturenames", ())
        for marker in sorted({m for f, m in MARKER_OF_FIXTURE.items() if f in names}):
            item.add_marker(marker)


def need(condition: bool, reason: str) -> None:
    """Skip with a one-line reason — or fail when CI requires every service."""
    if condition:
        return
    if REQUIRE:
        pytest.fail(
            f"required service missing (ORCHESTRA_REQUIRE_SERVICES=1): {reason}"
        )
    pytest.skip(reason)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres(db):
    need(
        connection.vendor == "postgresql",
        "needs PostgreSQL: run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/orchestra",
    )


@pytest.fixture
def redis_broker():
    url = settings.CELERY_BROKER_URL
    need(
        url.startswith("redis"),
        "needs Redis: run with CELERY_BROKER_URL=redis://127.0.0.1:6379/0",
    )
    parsed = urlparse(url)
    need(
        _port_open(parsed.hostname or "127.0.0.1", parsed.port or 6379),
        f"Redis is not reachable at {url}",
    )


def test_database_url() -> str:
    """DATABASE_URL of the database pytest-django created for this run."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    parsed = urlparse(settings.DATABASE_URL)
    return urlunparse(parsed._replace(path="/" + db["NAME"]))


class WorkerProcess:
    def __init__(
        self,
        name: str,
        pool: str = "threads",
        concurrency: int = 4,
        env: dict | None = None,
        queues: str | None = None,
    ):
        self.name = name
        from executions.models import Worker

        self.env = {**os.environ, "DATABASE_URL": test_database_url(), **(env or {})}
        self.env["PYTHONPATH"] = str(ROOT)
        before = set(Worker.objects.values_list("pk", flat=True))
        self.log = open(Path(settings.ORCHESTRA_HOME) / f"worker-{name}.log", "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "orchestra",
                "worker",
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--hostname",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                *(["--queues", queues] if queues else []),
            ],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited: {self.read_log()[-2000:]}")
            rows = Worker.objects.exclude(pk__in=before).filter(state="alive")
            if rows.exists():
                self.worker = rows.first()
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker {name} did not register: {self.read_log()[-2000:]}")

    def read_log(self) -> str:
        self.log.flush()
        return (Path(settings.ORCHESTRA_HOME) / f"worker-{self.name}.log").read_text()

    def sigkill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def start_worker(transactional_db):
    """Start real Celery worker processes against the test database."""
    started: list[WorkerProcess] = []

    def start(name: str = "w1", **kwargs) -> WorkerProcess:
        worker = WorkerProcess(name, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def celery_worker(start_worker):
    return start_worker("w1")


@pytest.fixture
def deploy():
    from flows.models import save_flow

    def deploy(source: str):
        flow, revision, _ = save_flow(source, actor="test")
        return revision

    return deploy


@pytest.fixture
def run_inprocess(transactional_db):
    """Run a flow's execution inside the test process; returns the finished execution."""
    from executions.engine.inprocess import use_in_process

    def run(revision, timeout: float = 30, **kwargs):
        with use_in_process() as runner:
            execution = create_execution(revision, **kwargs, actor=Actor.system("test"))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                execution.refresh_from_db()
                if execution.is_terminal and runner.idle():
                    break
                time.sleep(0.02)
            else:
                raise AssertionError(
                    f"execution {execution.pk} still {execution.state}; engine errors: {runner.errors}"
                )
            assert not runner.errors, runner.errors
        return execution

    return run


def wait_for(
    predicate, timeout: float = 20, interval: float = 0.1, what: str = "condition"
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Recorder:
    """Stands in for the Celery dispatcher: records what would reach the broker."""

    def __init__(self):
        self.sent: list[int] = []  # task runs handed to workers
        self.advanced: list[int] = []  # executions handed to the executor
        self.revoked: list[str] = []

    def run_taskrun(self, pk, eta=None):
        self.sent.append(pk)

    def advance(self, pk, countdown=None):
        self.advanced.append(pk)

    def revoke(self, ids):
        self.revoked += ids


@pytest.fixture
def recorder():
    """Nothing reaches a broker or runs; the test reads what was handed on."""
    from executions import dispatch

    before = dispatch.get()
    rec = Recorder()
    dispatch.use(rec)
    yield rec
    dispatch.use(before)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache: rate limits (webhook wrong keys,
    login attempts) counted by one test must not refuse the next one."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_worker_identity():
    """Tests flush tables; the in-process worker must register again."""
    from executions.engine.lease import forget_current_worker

    forget_current_worker()
    yield
    forget_current_worker()
