"""Execution control benchmark: ForEachItem fan-out, replay and restart.

    .venv/bin/python bench/control.py [--batches N] [--values N]

Uses its own PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/orchestra_bench_control) and runs the
engine in this process. Prints:
  - the executor pass that splits a file of N lines into N batches and creates
    N child executions, and the time until all N children ended;
  - replay(from_task=...) of an execution with a ForEach of N iterations (the
    copy of 2N task runs), and the time the replay takes to end;
  - restart() of the same execution with one failed iteration, until SUCCESS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--values", type=int, default=100)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    setup_django(url)

    from executions import actions
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
        parent = actions.create_execution(fan_out, inputs={"rows": uri}, start=False)
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
        execution = actions.create_execution(loop, inputs={"n": args.values})
        took = wait_end(execution, runner)
        execution.refresh_from_db()
        print(
            f"  first run: {execution.state} in {took:.2f} s, "
            f"{execution.taskruns.count()} task runs"
        )
        started = time.perf_counter()
        replay = actions.replay(execution.pk, from_task="check", actor="bench")
        copied = time.perf_counter() - started
        print(
            f"  replay(from_task='check') copying {replay.taskruns.count()} task runs: "
            f"{copied * 1000:.0f} ms"
        )
        wait_end(replay, runner)
        started = time.perf_counter()
        actions.restart(execution.pk, actor="bench")
        marked = time.perf_counter() - started
        took = wait_end(execution, runner)
        execution.refresh_from_db()
        print(
            f"  restart(): {marked * 1000:.0f} ms to mark the failed branch, "
            f"{execution.state} {took:.2f} s later (attempt {execution.attempt})"
        )


if __name__ == "__main__":
    main()
