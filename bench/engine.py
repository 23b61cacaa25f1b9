"""Engine overhead benchmark: how much time Orchestra adds around each task.

    .venv/bin/python bench/engine.py [--runs 5] [--only pg|local]

Needs PostgreSQL and Redis on this machine (override with BENCH_DATABASE_URL
and BENCH_BROKER_URL); it creates and migrates its own database
(``orchestra_bench``) and uses Redis db 14. Each mode runs in a child process
with a real Celery worker subprocess:

- pg    PostgreSQL + Redis, a prefork worker (production set-up):
        W0 calibration, W1 40 sequential light tasks, W2 10 sequential Python
        scripts computing fibo(33) (each reports its own compute time)
- local SQLite (WAL) + the SQLite-backed broker, a threads worker (``server local``):
        W1 again

Every workload runs once to warm up, then ``--runs`` times measured. Timings
come from the database's own timestamps (execution started/ended, task run
started/ended), not from this process's clock, so polling does not count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/orchestra_bench"
DEFAULT_BROKER = "redis://127.0.0.1:6379/14"
REPLY_KEY = "orchestra-bench-noop-reply"

W1_TASKS = 40
W2_TASKS, W2_FIBO = 10, 33


def light_flow(n: int) -> str:
    tasks = "".join(
        f'  - id: t{i:02d}\n    type: Return\n    format: "{{{{ execution.id }}}}-{i}"\n'
        for i in range(n)
    )
    return f"id: w1_light\nnamespace: bench\ntasks:\n{tasks}"


def fibo_flow(n: int, fibo: int) -> str:
    """Python Script tasks; each prints the seconds its computation took, so
    the overhead (process start, working folder, hand-offs) is what is left."""
    script = (
        "      import json, time\n"
        "      def fibo(n):\n"
        "          return n if n < 2 else fibo(n - 1) + fibo(n - 2)\n"
        "      start = time.perf_counter()\n"
        f"      fibo({fibo})\n"
        "      took = time.perf_counter() - start\n"
        '      print("::" + json.dumps({"outputs": {"seconds": took}}) + "::")\n'
    )
    tasks = "".join(
        f"  - id: f{i:02d}\n    type: io.kestra.plugin.scripts.python.Script\n"
        f"    script: |\n{script}"
        for i in range(n)
    )
    return f"id: w2_fibo\nnamespace: bench\ntasks:\n{tasks}"


# --- statistics ----------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "p95": percentile(values, 0.95),
        "n": len(values),
    }


# --- the parent: runs each mode in a child process, prints the table -------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=5, help="measured runs per workload"
    )
    parser.add_argument("--only", choices=["pg", "local"])
    parser.add_argument("--mode", choices=["pg", "local"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        return run_mode(args.mode, args.runs)

    results: dict[str, dict] = {}
    for mode in ("pg", "local"):
        if args.only and mode != args.only:
            continue
        print(f"running {mode} mode ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--mode", mode, "--runs", str(args.runs)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        if proc.returncode != 0:
            print(f"{mode} mode failed (exit {proc.returncode})", file=sys.stderr)
            return proc.returncode
        results.update(json.loads(proc.stdout))
    print_table(results, args.runs)
    return 0


ROWS = [
    ("W0", "redis_ping", "Redis PING round trip", "ms"),
    ("W0", "celery_noop", "no-op Celery task round trip", "ms"),
    ("W0", "update_commit", "one-row UPDATE + COMMIT", "ms"),
    ("W1", "w1_per_task", f"{W1_TASKS} light tasks: overhead per task", "ms"),
    ("W1", "w1_total", f"{W1_TASKS} light tasks: execution start to end", "ms"),
    ("W1", "w1_handoff", "  gap task end -> next task start", "ms"),
    ("W1", "w1_in_task", "  task run start -> end", "ms"),
    ("W1", "w1_first", "  execution created -> first task start", "ms"),
    ("W2", "w2_per_task", f"{W2_TASKS} x fibo({W2_FIBO}): overhead per task", "ms"),
    ("W2", "w2_work", f"{W2_TASKS} x fibo({W2_FIBO}): compute time per task", "ms"),
    ("W2", "w2_handoff", "  gap task end -> next task start", "ms"),
    ("W2", "w2_in_task", "  task run start -> end, minus compute", "ms"),
    ("W2", "w2_total", f"{W2_TASKS} x fibo({W2_FIBO}): execution start to end", "ms"),
    (
        "W1 local",
        "local_w1_per_task",
        f"{W1_TASKS} light tasks: overhead per task",
        "ms",
    ),
    (
        "W1 local",
        "local_w1_total",
        f"{W1_TASKS} light tasks: execution start to end",
        "ms",
    ),
    ("W1 local", "local_w1_handoff", "  gap task end -> next task start", "ms"),
    ("W1 local", "local_w1_in_task", "  task run start -> end", "ms"),
]
TARGETS = {"w1_per_task": 30, "w2_per_task": 30, "local_w1_per_task": 100}


def print_table(results: dict[str, dict], runs: int) -> None:
    print(
        f"\nOrchestra engine benchmark — 1 warm-up + {runs} measured runs per workload; "
        "W0 over 200 samples"
    )
    print(f"{'':9} {'measure':47} {'median':>9} {'p95':>9}  target")
    print("-" * 86)
    for group, key, label, unit in ROWS:
        if key not in results:
            continue
        r = results[key]
        target = TARGETS.get(key)
        verdict = ""
        if target is not None:
            verdict = f"<= {target} {unit} " + (
                "ok" if r["median"] <= target else "MISSED"
            )
        print(f"{group:9} {label:47} {r['median']:9.2f} {r['p95']:9.2f}  {verdict}")
    print(
        f"(all figures in ms; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end)"
    )


# --- a child: one mode, with its own settings ------------------------------
def run_mode(mode: str, runs: int) -> int:
    home = Path(tempfile.mkdtemp(prefix=f"orchestra-bench-{mode}-"))
    os.environ["ORCHESTRA_HOME"] = str(home)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    if mode == "pg":
        os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
        os.environ["CELERY_BROKER_URL"] = os.environ.get(
            "BENCH_BROKER_URL", DEFAULT_BROKER
        )
        from bench.pgdb import ensure_database

        ensure_database(os.environ["DATABASE_URL"])
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("CELERY_BROKER_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "orchestra.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    worker = start_worker(mode, home)
    try:
        results: dict[str, dict] = {}
        if mode == "pg":
            results["redis_ping"] = summary(redis_ping())
            results["celery_noop"] = summary(celery_noop())
            results["update_commit"] = summary(update_commit())
            results.update(workload("w1", light_flow(W1_TASKS), W1_TASKS, 0.0, runs))
            results.update(
                workload("w2", fibo_flow(W2_TASKS, W2_FIBO), W2_TASKS, None, runs)
            )
        else:
            w1 = workload("w1", light_flow(W1_TASKS), W1_TASKS, 0.0, runs)
            results.update({f"local_{k}": v for k, v in w1.items()})
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
    json.dump(results, sys.stdout)
    return 0


def start_worker(mode: str, home: Path) -> subprocess.Popen:
    from executions.models import Worker, WorkerState

    Worker.objects.filter(state=WorkerState.ALIVE).update(state=WorkerState.STOPPED)
    if mode == "pg":
        pool = ["--pool", "prefork", "--concurrency", "2", "--include", "bench.noop"]
    else:  # as ``orchestra server local`` runs it
        pool = ["--pool", "threads", "--concurrency", "8"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(home / "worker.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "orchestra",
            "worker",
            *pool,
            "--loglevel",
            "WARNING",
            "--hostname",
            f"bench-{mode}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not Worker.objects.filter(state=WorkerState.ALIVE).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start; see {home / 'worker.log'}")
        time.sleep(0.1)
    return proc


# --- W0 calibration --------------------------------------------------------
def _redis():
    import redis

    return redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])


def redis_ping(samples: int = 200) -> list[float]:
    client = _redis()
    client.ping()
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        client.ping()
        out.append((time.perf_counter() - start) * 1000)
    return out


def celery_noop(samples: int = 200) -> list[float]:
    """Publish a task, a worker runs it and pushes a reply to Redis: the bare
    cost of one trip through Celery, with nothing of Orchestra in it."""
    from bench.noop import noop

    client = _redis()
    client.delete(REPLY_KEY)
    out = []
    for i in range(samples + 5):
        start = time.perf_counter()
        noop.apply_async((REPLY_KEY, i))
        reply = client.blpop([REPLY_KEY], timeout=30)
        if reply is None:
            raise SystemExit("the no-op task never came back: is the worker running?")
        if i >= 5:  # the first ones warm up the pool processes
            out.append((time.perf_counter() - start) * 1000)
    return out


def update_commit(samples: int = 200) -> list[float]:
    from django.db import connection, transaction
    from django.utils import timezone

    from executions.models import Worker

    row = Worker.objects.create(
        name=f"bench-{os.getpid()}",
        hostname="bench",
        pid=0,
        state="stopped",
        started_at=timezone.now(),
        last_heartbeat_at=timezone.now(),
    )
    connection.ensure_connection()
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        with transaction.atomic():
            Worker.objects.filter(pk=row.pk).update(last_heartbeat_at=timezone.now())
        out.append((time.perf_counter() - start) * 1000)
    row.delete()
    return out


# --- W1/W2 ------------------------------------------------------------------
def workload(
    name: str, source: str, tasks: int, work: float | None, runs: int
) -> dict[str, dict]:
    """Per-task overhead of ``tasks`` sequential tasks. ``work`` is the
    seconds each task itself needs; None means each task reports it in its
    ``seconds`` output."""
    from executions.models import Execution, TaskRun
    from flows.models import save_flow

    _, revision, _ = save_flow(source, actor="bench")
    samples: dict[str, list[float]] = {
        "per_task": [],
        "total": [],
        "handoff": [],
        "in_task": [],
        "first": [],
        "work": [],
    }
    for run in range(runs + 1):
        execution = create_execution(revision, actor=Actor("api", "bench"))
        deadline = time.monotonic() + 120 + tasks * (work or 2) * 3
        while True:
            execution = Execution.objects.get(pk=execution.pk)
            if execution.is_terminal:
                break
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{name}: execution {execution.pk} still {execution.state}"
                )
            time.sleep(0.05)
        if execution.state != "SUCCESS":
            raise SystemExit(
                f"{name}: execution {execution.pk} ended {execution.state}: "
                f"{execution.error}"
            )
        if run == 0:
            continue  # warm-up
        runs_ = list(TaskRun.objects.filter(execution=execution).order_by("started_at"))
        spent = [
            work if work is not None else tr.outputs["vars"]["seconds"] for tr in runs_
        ]
        total = (execution.ended_at - execution.started_at).total_seconds() * 1000
        samples["total"].append(total)
        samples["per_task"].append((total - sum(spent) * 1000) / tasks)
        samples["work"] += [s * 1000 for s in spent]
        samples["first"].append(
            (runs_[0].started_at - execution.created_at).total_seconds() * 1000
        )
        for before, after in zip(runs_, runs_[1:], strict=False):
            samples["handoff"].append(
                (after.started_at - before.ended_at).total_seconds() * 1000
            )
        for tr, seconds in zip(runs_, spent, strict=True):
            samples["in_task"].append(
                ((tr.ended_at - tr.started_at).total_seconds() - seconds) * 1000
            )
    keep = ("per_task", "total")
    if work is None:
        keep += ("work", "in_task", "handoff")
    if work == 0:
        keep = tuple(k for k in samples if k != "work")
    return {f"{name}_{k}": summary(v) for k, v in samples.items() if k in keep}


if __name__ == "__main__":
    sys.exit(main())
