"""TriggerEvent retention: how long the purge takes, and its query plan.

    DATABASE_URL=postgres://... .venv/bin/python bench/trigger_events.py [N]

Uses (and migrates) the database of DATABASE_URL; inserts N events (default
200000, 90% older than the retention period) in namespace
``bench.retention``, purges them pass by pass as beat would, then deletes
what is left. Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from executions.models import TriggerEvent  # noqa: E402
from executions.triggers.retention import purge_trigger_events  # noqa: E402

NS = "bench.retention"


def main(n: int) -> None:
    call_command("migrate", verbosity=0)
    TriggerEvent.objects.filter(namespace=NS).delete()
    days = settings.ORCHESTRA_TRIGGER_EVENT_RETENTION_DAYS
    with connection.cursor() as cur:
        # Old rows: 31 to 120 days; the newest tenth is recent.
        cur.execute(
            """
            INSERT INTO executions_triggerevent
              (namespace, flow_id, trigger_id, kind, scheduled_at, backfill,
               status, reason, actor, created_at)
            SELECT %s, 'f' || (g %% 50), 't', 'schedule',
                   now() - make_interval(secs => g * 60), false,
                   'fired', '', '', now() - make_interval(secs => g * 60)
            FROM generate_series(1, %s) AS g
            """,
            [NS, n],
        )
        cur.execute("ANALYZE executions_triggerevent")
        cur.execute(
            "EXPLAIN SELECT id FROM executions_triggerevent WHERE created_at < "
            "now() - interval '%s days' AND NOT status = 'pending' "
            "ORDER BY created_at LIMIT %s",
            [days, settings.ORCHESTRA_TRIGGER_EVENT_PURGE_BATCH],
        )
        plan = "\n    ".join(row[0] for row in cur.fetchall())
    old = TriggerEvent.objects.filter(namespace=NS).count()
    print(f"{n} events inserted ({old} rows); retention {days} days")
    print(f"plan of one batch:\n    {plan}")
    passes, total = 0, 0
    started = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        result = purge_trigger_events()
        passes += 1
        total += result.deleted
        print(
            f"pass {passes}: {result.deleted} deleted in "
            f"{(time.perf_counter() - t0) * 1000:.0f} ms, more={result.more}"
        )
        if not result.more:
            break
    elapsed = time.perf_counter() - started
    print(
        f"total {total} deleted in {elapsed:.2f} s "
        f"({total / elapsed:.0f} rows/s); "
        f"{TriggerEvent.objects.filter(namespace=NS).count()} left"
    )
    TriggerEvent.objects.filter(namespace=NS).delete()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
