"""SLA sweep benchmark: 1,000,000 executions, 10,000 open deadlines, PostgreSQL.

    .venv/bin/python bench/sla.py [--executions N] [--open N] [--due N] [--runs N]

Uses its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/orchestra_bench_sla), created and loaded
with generate_series on first use. Prints the time of one sweep in three
situations: the usual minute (nothing due), 1,000 deadlines due at once, and
all open deadlines due at once. Target: ≤ 1 s per sweep.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pgdb import ensure_database  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/orchestra_bench_sla"


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings")
    os.environ.setdefault("EMAIL_HOST", "")
    import django

    django.setup()
    from django.conf import settings

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


_EXECUTIONS_SQL = """
    INSERT INTO executions_execution
      (namespace, flow_id, revision, source, state, stop_state, inputs, labels, variables,
       outputs, trigger, trigger_id, error, attempt, created_at, started_at, ended_at,
       progress_at)
    SELECT 'bench.team' || (i %% 20), 'flow' || (i %% 500), 1, '', %(state)s, '', '{}',
           '{"env": "prod"}', '{}', '{}', '{}', 'daily', '', 1, t, t,
           CASE WHEN %(state)s = 'RUNNING' THEN NULL ELSE t + run END, t
    FROM (SELECT i, now() - make_interval(secs => i %% %(spread)s) AS t,
                 make_interval(secs => 30 + i %% 60) AS run
          FROM generate_series(1, %(count)s) AS i) s
"""


def load(executions: int, open_deadlines: int) -> None:
    """Bulk load with generate_series: finished executions with their closed
    deadlines, and ``open_deadlines`` running executions with open ones."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM executions_execution),"
            " (SELECT count(*) FROM sla_deadline)"
        )
        # Reused only when a previous load finished (one deadline per execution).
        if cur.fetchone() == (executions, executions):
            return
        print(f"loading {executions:,} executions ...", flush=True)
        cur.execute(
            "TRUNCATE executions_execution, sla_slamiss, sla_pendingalert, sla_deadline, "
            "sla_digest, sla_slarule RESTART IDENTITY CASCADE"
        )
        # Finished runs over the last 30 days (30-90 s each), then running ones
        # started over the last 2 hours.
        cur.execute(
            _EXECUTIONS_SQL,
            {
                "state": "SUCCESS",
                "spread": 30 * 86400,
                "count": executions - open_deadlines,
            },
        )
        cur.execute(
            _EXECUTIONS_SQL,
            {"state": "RUNNING", "spread": 2 * 3600, "count": open_deadlines},
        )
        cur.execute("""
            INSERT INTO sla_slarule (name, namespace, flow_id, labels, slo, sla,
                expected_runs, expected_cron, tz, recipients, on_breach, add_labels, enabled,
                created_at, updated_at)
            VALUES ('bench', 'bench', '', '{}', NULL, interval '1 day', 1, '*/10 * * * *',
                    'UTC', 'oncall@example.com', 'NONE', '{}', true, now(), now())
        """)
        # One closed deadline per finished execution (met), one open per running one.
        cur.execute("""
            INSERT INTO sla_deadline (execution_id, rule_id, key, kind, level, threshold,
                assertion, behavior, labels, due_at, state, attempt)
            SELECT e.id, 1, 'rule', 'duration', 'SLA', interval '1 hour', '', 'NONE', '{}',
                   e.started_at + interval '1 hour',
                   CASE WHEN e.state = 'RUNNING' THEN 'open' ELSE 'met' END, 1
            FROM executions_execution e
        """)
        cur.execute("ANALYZE")


def push_due(count: int) -> None:
    """Make ``count`` open deadlines due (they were ahead of now)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("""
            UPDATE sla_deadline SET due_at = now() + interval '1 day' WHERE state = 'open'
        """)
        cur.execute(
            """
            UPDATE sla_deadline SET due_at = now() - interval '1 second'
            WHERE id IN (SELECT id FROM sla_deadline WHERE state = 'open' ORDER BY id LIMIT %s)
        """,
            [count],
        )


def reset() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DELETE FROM sla_pendingalert")
        cur.execute("DELETE FROM sla_slamiss")
        cur.execute("DELETE FROM sla_digest")
        cur.execute("UPDATE sla_deadline SET state = 'open' WHERE state = 'missed'")
        cur.execute(
            "UPDATE sla_slarule SET sla_quiet_until = NULL, slo_quiet_until = NULL"
        )
        # What autovacuum would have done between two real sweeps.
        cur.execute(
            "VACUUM ANALYZE sla_slamiss, sla_pendingalert, sla_deadline, sla_digest"
        )


def reset_vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE sla_deadline")


def timed_sweep() -> tuple[float, object]:
    from sla.sweep import run

    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=10_000, help="open deadlines")
    parser.add_argument(
        "--due", type=int, default=1_000, help="deadlines due in scenario 2"
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    setup_django(url)
    load(args.executions, args.open)
    from croniter import croniter
    from django.template.loader import get_template
    from django.utils import timezone

    from executions.models import Execution
    from sla.models import SlaRule

    # A beat worker has loaded the email templates long before a burst; the
    # first load (template engine, tag libraries) takes about 0.5 s.
    get_template("sla/digest.txt")
    get_template("sla/digest.html")

    print(
        f"SLA sweep over {args.executions:,} executions, {args.open:,} open deadlines "
        f"(PostgreSQL)"
    )
    scenarios = [
        ("nothing due (the usual minute)", 0),
        (f"{args.due:,} due", args.due),
        (f"all {args.open:,} due", args.open),
    ]
    for label, due in scenarios:
        times = []
        for _ in range(args.runs):
            reset()
            push_due(due)
            reset_vacuum()
            # The expected-run rule's cursor: one window to check per sweep.
            # The expected-run rule checks one 10-minute window, in which a run succeeded.
            last_tick = croniter("*/10 * * * *", timezone.now()).get_prev(datetime)
            SlaRule.objects.update(
                expected_checked_until=last_tick - timedelta(minutes=10)
            )
            ran = last_tick - timedelta(minutes=5)
            succeeded = Execution.objects.create(
                namespace="bench.team0",
                flow_id="flow0",
                state="SUCCESS",
                created_at=ran,
                started_at=ran,
                ended_at=ran + timedelta(seconds=30),
            )
            seconds, result = timed_sweep()
            succeeded.delete()  # the next run (and bench) starts from the same data
            assert result.misses == due, (result, due)
            times.append(seconds)
        print(
            f"  {label:<34} median {statistics.median(times) * 1000:7.0f} ms   "
            f"max {max(times) * 1000:7.0f} ms   ({result})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
