"""Deadline → miss recorded and its actions run: two designs, measured.

    .venv/bin/python bench/sla_deadlines.py [--design tick|eta|both]
        [--executions N] [--open N] [--spread S] [--tick S] [--actions-every K]

Same data as bench/sla.py (its own database, BENCH_DATABASE_URL, default
orchestra_bench_sla): 1,000,000 executions, 10,000 running with an open SLA
deadline. The open deadlines are made due one after another over the next
``--spread`` seconds; every ``--actions-every``-th one adds a label when it
misses (an action through executions.lifecycle). For each deadline the lag is
measured from its due time to the moment its miss was recorded *and* its
action had run. Both designs run the same code (sla.sweep); only what
triggers it differs:

- tick: ``sla.sweep.tick()`` every ``--tick`` seconds (what the beat entry
  ``orchestra.sla_tick`` runs on a worker; the beat → worker hop, ~5 ms on
  Redis here, is not in the figure);
- eta: one Celery task per deadline, sent with ``eta=due_at`` to a real
  worker process on Redis (CELERY_BROKER_URL), which records that
  execution's miss and runs its action. Sending the 10,000 messages is timed
  too: the engine would pay it when executions start.

Prints p50/p95/p99/max of the lag per design. Target: p95 ≤ 5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from celery import shared_task  # noqa: E402

LAG_TABLE = "bench_deadline_lag"


@shared_task(name="bench.fire_deadline", ignore_result=True)
def fire_deadline(execution_id: int, due_ts: float) -> None:
    """The eta design's task: this execution's due deadline, now."""
    from django.db import connection
    from django.utils import timezone

    from sla.sweep import apply_actions, record_duration_misses

    record_duration_misses(timezone.now(), execution_ids=[execution_id])
    apply_actions(execution_ids=[execution_id])
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {LAG_TABLE} (execution_id, lag) VALUES (%s, %s)",
            [execution_id, time.time() - due_ts],
        )


def prepare(
    spread: float, actions_every: int, lead: float = 5.0
) -> list[tuple[int, float]]:
    """Reset misses; make the open deadlines due one after another over
    ``spread`` s, the first ``lead`` s from now. Returns (execution id, due
    time as a Unix timestamp) per deadline."""
    from django.db import connection

    from bench.sla import reset

    reset()
    start = time.time() + lead
    with connection.cursor() as cur:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {LAG_TABLE} (execution_id bigint, lag float)"
        )
        cur.execute(f"TRUNCATE {LAG_TABLE}")
        cur.execute(
            """
            WITH o AS (
                SELECT id, row_number() OVER (ORDER BY id) - 1 AS n,
                       count(*) OVER () AS total
                FROM sla_deadline WHERE state = 'open'
            )
            UPDATE sla_deadline d SET state = 'open',
                due_at = to_timestamp(%(start)s + o.n * %(spread)s / o.total),
                labels = CASE WHEN o.n %% %(every)s = 0
                              THEN '{"sla": "late"}'::jsonb ELSE '{}'::jsonb END
            FROM o WHERE d.id = o.id
            RETURNING d.execution_id, extract(epoch FROM d.due_at)
            """,
            {"start": start, "spread": spread, "every": actions_every},
        )
        due = [(ex, float(ts)) for ex, ts in cur.fetchall()]
        cur.execute("VACUUM ANALYZE sla_deadline")
    return sorted(due, key=lambda row: row[1])


def run_tick(due: list[tuple[int, float]], tick: float) -> list[float]:
    from django.db import connection

    from sla.sweep import tick as sla_tick

    end = due[-1][1] + 10
    durations = []
    lags: list[float] = []
    due_at = dict(due)
    while time.time() < end:
        began = time.time()
        with connection.cursor() as cur:
            cur.execute("SELECT max(id) FROM sla_slamiss")
            before = cur.fetchone()[0] or 0
        result = sla_tick()
        finished = time.time()
        durations.append(finished - began)
        if result.misses:
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT execution_id FROM sla_slamiss WHERE id > %s", [before]
                )
                lags += [finished - due_at[ex] for (ex,) in cur.fetchall()]
        time.sleep(max(0.0, tick - (time.time() - began)))
    print(
        f"    tick duration: median {statistics.median(durations) * 1000:.0f} ms, "
        f"max {max(durations) * 1000:.0f} ms over {len(durations)} ticks"
    )
    return lags


def run_eta(due: list[tuple[int, float]], url: str) -> list[float]:
    """The deadlines were made due from ``--eta-lead`` s on, so the messages
    are all sent before the first is due (the engine would send each when its
    execution starts)."""
    from datetime import UTC, datetime

    from django.db import connection

    from orchestra.celery import app

    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    log = open(Path(tempfile.gettempdir()) / "orchestra-bench-eta-worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "orchestra", "worker", "--pool",
         "threads", "--concurrency", "4", "--include", "bench.sla_deadlines",
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-Q", "bench-sla"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(5)
        sent = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for ex, ts in due:
                fire_deadline.apply_async(
                    (ex, ts),
                    eta=datetime.fromtimestamp(ts, UTC),
                    queue="bench-sla",
                    producer=producer,
                )
        took = time.perf_counter() - sent
        print(
            f"    sending {len(due):,} eta messages: {took * 1000:.0f} ms "
            f"({took / len(due) * 1000:.1f} ms each); first due "
            f"{due[0][1] - time.time():.0f} s after the last was sent"
        )
        end = due[-1][1] + 30
        while time.time() < end:
            with connection.cursor() as cur:
                cur.execute(f"SELECT count(*) FROM {LAG_TABLE}")
                if cur.fetchone()[0] >= len(due):
                    break
            time.sleep(1)
        with connection.cursor() as cur:
            cur.execute(f"SELECT lag FROM {LAG_TABLE}")
            return [lag for (lag,) in cur.fetchall()]
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)
        log.close()


def report(name: str, lags: list[float], expected: int) -> None:
    if not lags:
        print(f"  {name}: no misses recorded")
        return
    q = statistics.quantiles(lags, n=100)
    print(
        f"  {name:<5} {len(lags):,}/{expected:,} fired   p50 {q[49]:.2f} s   "
        f"p95 {q[94]:.2f} s   p99 {q[98]:.2f} s   max {max(lags):.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", choices=["tick", "eta", "both"], default="both")
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=120.0)
    parser.add_argument("--tick", type=float, default=1.0)
    parser.add_argument("--actions-every", type=int, default=10)
    parser.add_argument(
        "--eta-lead", type=float, default=90.0, help="eta: first deadline due after"
    )
    args = parser.parse_args()
    from bench.pgdb import ensure_database
    from bench.sla import DEFAULT_URL, load, setup_django

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    setup_django(url)
    load(args.executions, args.open)
    print(
        f"Deadlines over {args.executions:,} executions: {args.open:,} open, due "
        f"over {args.spread:.0f} s, every {args.actions_every}th adds a label "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    designs = ["tick", "eta"] if args.design == "both" else [args.design]
    for design in designs:
        lead = args.eta_lead if design == "eta" else 5.0
        due = prepare(args.spread, args.actions_every, lead)
        print(f"  {design}:")
        if design == "tick":
            lags = run_tick(due, args.tick)
        else:
            lags = run_eta(due, url)
        report(design, lags, len(due))
        print(f"    load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
