"""Benchmark: stuck-execution preview and bulk cancel at scale.

    .venv/bin/python bench/stuck.py [--executions 1000000] [--active 100000] [--cancel 10000]

Uses its own PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/orchestra_bench_stuck), dropped and
refilled on every run. Targets: preview over 1,000,000 executions of which
100,000 are not terminal in at most 2 s; cancel of 10,000 in at most 10 s.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

from executions.lifecycle.actor import Actor
from executions.models import Cause

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pgdb import ensure_database  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/orchestra_bench_stuck"


# Non-terminal mix (fractions of --active): what a busy installation holds.
MIX = [
    ("running", 0.40),  # RUNNING task on a live worker: spared
    ("stalled", 0.20),  # RUNNING, nothing in flight, silent for an hour: stuck
    ("orphaned", 0.10),  # RUNNING task on a dead worker: stuck
    ("lost", 0.10),  # CREATED an hour ago, never started: stuck
    ("paused", 0.10),  # PAUSED: spared
    ("scheduled", 0.10),  # retry scheduled in the future: spared
]


def fill(total: int, active: int) -> dict[str, int]:
    from django.db import connection

    terminal = total - active
    counts = {kind: int(active * share) for kind, share in MIX}
    counts["running"] += active - sum(counts.values())
    ex_cols = (
        "namespace, flow_id, revision, source, state, stop_state, inputs, labels, "
        "variables, outputs, trigger, trigger_id, error, attempt, created_at, "
        "started_at, ended_at, progress_at"
    )
    tr_cols = (
        "execution_id, task_id, attempt, state, flowable, outputs, error, worker_id, "
        "created_at, scheduled_at, started_at, ended_at"
    )
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO executions_worker (name, hostname, pid, queues, state, started_at, "
            "last_heartbeat_at, dead_at) VALUES "
            "('live:1:aa', 'live', 1, '', 'alive', now(), now() + interval '1 hour', NULL), "
            "('dead:2:bb', 'dead', 2, '', 'dead', now() - interval '2 hours', "
            "now() - interval '2 hours', now() - interval '2 hours')"
        )
        cur.execute("SELECT id, state FROM executions_worker")
        workers = {state: pk for pk, state in cur.fetchall()}
        # Terminal history: one execution and one task run each.
        cur.execute(
            f"INSERT INTO executions_execution ({ex_cols}) SELECT "
            "'bench.ns' || (g %% 50), 'flow' || (g %% 200), 1, '', 'SUCCESS', '', '{}', '{}', "
            "'{}', '{}', '{}', '', '', 1, now() - interval '3 days' + g * interval '100 ms', "
            "now() - interval '3 days', now() - interval '2 days', now() - interval '2 days' "
            "FROM generate_series(1, %s) g",
            [terminal],
        )
        cur.execute(
            f"INSERT INTO executions_taskrun ({tr_cols}) SELECT id, 'work', 1, 'SUCCESS', false, "
            "'{}', '', %s, created_at, NULL, started_at, ended_at FROM executions_execution",
            [workers["alive"]],
        )
        states = {
            "running": "RUNNING",
            "stalled": "RUNNING",
            "orphaned": "RUNNING",
            "lost": "CREATED",
            "paused": "PAUSED",
            "scheduled": "RUNNING",
        }
        for kind, count in counts.items():
            cur.execute("SELECT COALESCE(MAX(id), 0) FROM executions_execution")
            first = cur.fetchone()[0] + 1
            cur.execute(
                f"INSERT INTO executions_execution ({ex_cols}) SELECT "
                "'bench.ns' || (g %% 50), 'flow' || (g %% 200), 1, '', %s, '', '{}', '{}', "
                "'{}', '{}', '{}', '', '', 1, now() - interval '2 hours', "
                "now() - interval '2 hours', NULL, now() - interval '1 hour' "
                "FROM generate_series(1, %s) g",
                [states[kind], count],
            )
            last = first + count - 1
            if kind in ("running", "orphaned"):
                worker = workers["alive"] if kind == "running" else workers["dead"]
                cur.execute(
                    f"INSERT INTO executions_taskrun ({tr_cols}) SELECT id, 'work', 1, "
                    "'RUNNING', false, '{}', '', %s, now() - interval '2 hours', NULL, "
                    "now() - interval '2 hours', NULL FROM executions_execution "
                    "WHERE id BETWEEN %s AND %s",
                    [worker, first, last],
                )
            elif kind == "scheduled":
                cur.execute(
                    f"INSERT INTO executions_taskrun ({tr_cols}) SELECT id, 'work', 2, "
                    "'CREATED', false, '{}', '', NULL, now() - interval '1 hour', "
                    "now() + interval '1 hour', NULL, NULL FROM executions_execution "
                    "WHERE id BETWEEN %s AND %s",
                    [first, last],
                )
        cur.execute("ANALYZE")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--active", type=int, default=100_000)
    parser.add_argument("--cancel", type=int, default=10_000)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the database of the previous run (each run cancels more)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print the confirm's 20 most expensive calls (cProfile, cumulative)",
    )
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    if not args.reuse:
        ensure_database(url, fresh=True)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from executions import dispatch
    from executions.models import Execution, StateChange
    from executions.stuck import cleanup
    from executions.stuck.detect import detect

    class NoBroker:  # the bench measures the database work, not a broker
        def revoke(self, ids):
            pass

    dispatch.use(NoBroker())
    started = time.perf_counter()
    if args.reuse:
        counts = {"stalled": 0, "orphaned": 0, "lost": 0}
    else:
        counts = fill(args.executions, args.active)
        print(
            f"filled {args.executions:,} executions ({args.active:,} not terminal: "
            + ", ".join(f"{k} {v:,}" for k, v in counts.items())
            + f") in {time.perf_counter() - started:.1f}s"
        )

    timings, cpu = [], []
    for _ in range(5):
        t, c = time.perf_counter(), time.process_time()
        found = detect(older_than_minutes=5)
        timings.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    if not args.reuse:
        expected = counts["stalled"] + counts["orphaned"] + counts["lost"]
        assert len(found.stuck) == expected, (len(found.stuck), expected)
    print(
        f"detect over {args.executions:,} executions: {len(found.stuck):,} stuck, "
        f"{len(found.spared):,} spared; best {min(timings):.2f}s, median "
        f"{sorted(timings)[2]:.2f}s, worst {max(timings):.2f}s (target <= 2 s); Python CPU "
        f"best {min(cpu):.2f}s"
    )

    t, c = time.perf_counter(), time.process_time()
    run, _ = cleanup.preview(
        older_than_minutes=5, max_count=args.cancel, actor=Actor(Cause.USER, "bench")
    )
    preview_time, preview_cpu = time.perf_counter() - t, time.process_time() - c
    print(
        f"stored preview (detect + CleanupRun of {len(run.preview):,} ids): "
        f"{preview_time:.2f}s, Python CPU {preview_cpu:.2f}s (target <= 2 s)"
    )

    before = StateChange.objects.count()
    profiler = cProfile.Profile() if args.profile else None
    t, c = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    run = cleanup.confirm(run, actor=Actor(Cause.USER, "bench"))
    if profiler:
        profiler.disable()
    cancel_time, cancel_cpu = time.perf_counter() - t, time.process_time() - c
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(
            r"orchestra|executions|sla/|flows/", 25
        )
    cancelled = Execution.objects.filter(
        pk__in=run.cancelled_ids, state="CANCELLED"
    ).count()
    audit = StateChange.objects.count() - before
    print(
        f"confirm: cancelled {cancelled:,} (skipped {len(run.skipped)}), "
        f"{audit:,} state-change rows, in {cancel_time:.2f}s, Python CPU {cancel_cpu:.2f}s "
        "(target <= 10 s)"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load} (shared with other jobs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
