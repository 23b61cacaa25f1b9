"""Execution control benchmark: ForEachItem fan-out, replay and restart.

    .venv/bin/python bench/control.py [--batches N] [--values N]
    .venv/bin/python bench/control.py --foreach 100,500 [--limits 1,0] [--in-process-only]

Uses its own PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/orchestra_bench_control) and runs the
engine in this process. Prints:
  - the executor pass that splits a file of N lines into N batches and creates
    N child executions, and the time until all N children ended;
  - replay(from_task=...) of an execution with a ForEach of N iterations (the
    copy of 2N task runs), and the time the replay takes to end;
  - restart() of the same execution with one failed iteration, until SUCCESS.

With ``--foreach``: a ForEach over each number of values (one Return task per
value) for each ``concurrencyLimit``, run in this process (8 threads) and then
by a real Celery worker subprocess (prefork, concurrency 2) over Redis
(BENCH_BROKER_URL, default redis://127.0.0.1:6379/14). Times are the
execution's own created_at → ended_at.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from executions.lifecycle.actor import Actor
from executions.lifecycle.replay import replay
from executions.lifecycle.restart import restart
from executions.lifecycle.start import create_execution
from executions.models import Cause

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pgdb import ensure_database  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/orchestra_bench_control"


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


CHILD = """
id: bench_child
namespace: bench.control
inputs:
  - id: items
    type: FILE
tasks:
  - id: got
    type: Return
    format: "{{ inputs.items }}"
"""

FAN_OUT = """
id: bench_fan_out
namespace: bench.control
inputs:
  - id: rows
    type: FILE
tasks:
  - id: each
    type: ForEachItem
    items: "{{ inputs.rows }}"
    batch:
      rows: 1
    namespace: bench.control
    flowId: bench_child
    inputs:
      items: "{{ taskrun.items }}"
"""

LOOP = """
id: bench_loop
namespace: bench.control
inputs:
  - id: n
    type: INT
tasks:
  - id: loop
    type: ForEach
    values: "{{ range(inputs.n) | list }}"
    concurrencyLimit: 0
    tasks:
      - id: work
        type: Return
        format: "{{ taskrun.value }}"
      - id: check
        type: Fail
        condition: "{{ taskrun.value == '7' and taskrun.attemptsCount == 0 }}"
  - id: last
    type: Return
    format: done
"""


def wait_end(execution, runner, timeout: float = 600) -> float:
    from executions.models import Execution

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        state = Execution.objects.filter(pk=execution.pk).values_list(
            "state", flat=True
        )[0]
        if (
            state in ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")
            and runner.idle()
        ):
            return time.perf_counter() - started
        time.sleep(0.05)
    raise SystemExit(f"execution {execution.pk} did not end within {timeout}s")


FOR_EACH = """
id: bench_for_each_{limit}
namespace: bench.control
inputs:
  - id: n
    type: INT
tasks:
  - id: loop
    type: ForEach
    values: "{{{{ range(inputs.n) | list }}}}"
    concurrencyLimit: {limit}
    tasks:
      - id: work
        type: Return
        format: "{{{{ taskrun.value }}}}"
"""


def for_each_scaling(sizes: list[int], limits: list[int], worker: bool) -> None:
    """ForEach over each size, per concurrencyLimit, in-process then with a
    real worker. Prints execution created → ended from the database."""
    from executions.engine.inprocess import use_in_process
    from flows.models import save_flow

    revisions = {limit: save_flow(FOR_EACH.format(limit=limit))[1] for limit in limits}

    def one(limit: int, n: int, runner=None) -> None:
        execution = create_execution(
            revisions[limit], inputs={"n": n}, actor=Actor.system("test")
        )
        wait_end(execution, runner or _Idle(), timeout=1800)
        execution.refresh_from_db()
        took = (execution.ended_at - execution.created_at).total_seconds()
        print(
            f"  ForEach over {n:4d} values, concurrencyLimit {limit}: "
            f"{execution.state} in {took:6.2f} s ({took / n * 1000:.1f} ms per value; "
            f"load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )

    import statistics

    from bench.engine import update_commit

    print(
        "machine: one-row UPDATE + COMMIT "
        f"{statistics.median(update_commit()):.2f} ms median (200 samples)"
    )
    print("ForEach, in this process (8 threads)")
    with use_in_process() as runner:
        for limit in limits:
            for n in sizes:
                one(limit, n, runner)
    if not worker:
        return
    import tempfile

    from bench.engine import start_worker

    home = Path(tempfile.mkdtemp(prefix="orchestra-bench-control-"))
    print("ForEach, real worker (prefork, concurrency 2) over Redis")
    proc = start_worker("pg", home)
    try:
        for limit in limits:
            for n in sizes:
                one(limit, n)
    finally:
        proc.terminate()
        proc.wait(30)


class _Idle:
    """wait_end's runner when a worker process does the work."""

    def idle(self) -> bool:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--values", type=int, default=100)
    parser.add_argument(
        "--foreach", help="comma-separated numbers of ForEach values (only that part)"
    )
    parser.add_argument("--limits", default="1,0", help="ForEach concurrencyLimits")
    parser.add_argument("--in-process-only", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    if args.foreach:
        os.environ["CELERY_BROKER_URL"] = os.environ.get(
            "BENCH_BROKER_URL", "redis://127.0.0.1:6379/14"
        )
        os.environ.setdefault("LOG_LEVEL", "WARNING")
    setup_django(url)
    if args.foreach:
        for_each_scaling(
            [int(n) for n in args.foreach.split(",")],
            [int(n) for n in args.limits.split(",")],
            worker=not args.in_process_only,
        )
        return

    from executions.engine.executor import advance
    from executions.engine.inprocess import use_in_process
    from executions.models import Execution
    from executions.storage import save
    from flows.models import save_flow

    save_flow(CHILD)
    _, fan_out, _ = save_flow(FAN_OUT)
    _, loop, _ = save_flow(LOOP)
    lines = "".join(f'{{"row": {i}}}\n' for i in range(args.batches))
    uri = save(f"bench/control/rows-{time.time_ns()}.ion", lines.encode())

    print(f"ForEachItem over {args.batches} lines, batch.rows 1")
    with use_in_process() as runner:
        parent = create_execution(
            fan_out, inputs={"rows": uri}, start=False, actor=Actor.system("test")
        )
        started = time.perf_counter()
        advance(parent.pk)
        split = time.perf_counter() - started
        children = Execution.objects.filter(parent=parent).count()
        print(
            f"  executor pass creating {children} child executions: {split:.2f} s "
            f"({split / max(children, 1) * 1000:.1f} ms per child)"
        )
        # The children were sent to the engine when that pass committed.
        total = wait_end(parent, runner)
        print(
            f"  all children ended and the parent merged their outputs: {total:.2f} s"
        )

        print(
            f"ForEach of {args.values} values (one iteration fails on its first attempt)"
        )
        execution = create_execution(
            loop, inputs={"n": args.values}, actor=Actor.system("test")
        )
        took = wait_end(execution, runner)
        execution.refresh_from_db()
        print(
            f"  first run: {execution.state} in {took:.2f} s, "
            f"{execution.taskruns.count()} task runs"
        )
        started = time.perf_counter()
        replayed = replay(
            execution.pk, from_task="check", actor=Actor(Cause.USER, "bench")
        )
        copied = time.perf_counter() - started
        print(
            f"  replay(from_task='check') copying {replayed.taskruns.count()} task runs: "
            f"{copied * 1000:.0f} ms"
        )
        wait_end(replayed, runner)
        started = time.perf_counter()
        restart(execution.pk, actor=Actor(Cause.USER, "bench"))
        marked = time.perf_counter() - started
        took = wait_end(execution, runner)
        execution.refresh_from_db()
        print(
            f"  restart(): {marked * 1000:.0f} ms to mark the failed branch, "
            f"{execution.state} {took:.2f} s later (attempt {execution.attempt})"
        )


if __name__ == "__main__":
    main()
