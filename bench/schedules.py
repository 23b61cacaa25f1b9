"""Scheduler cost: an evaluation with nothing due, and with N schedules due.

    DATABASE_URL=postgres://... .venv/bin/python bench/schedules.py [N]

Uses (and migrates) the database of DATABASE_URL; creates flows in the
namespace ``bench.schedules`` and deletes them, with their executions, after.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from executions import dispatch  # noqa: E402
from executions.models import Execution, Trigger, TriggerEvent  # noqa: E402
from executions.triggers.schedule import evaluate_schedules  # noqa: E402
from flows.models import Flow, save_flow  # noqa: E402

NS = "bench.schedules"
FLOW = """
id: f{i}
namespace: bench.schedules
tasks:
  - id: a
    type: Return
    format: "{{{{ trigger.date }}}}"
triggers:
  - id: t
    type: Schedule
    cron: "*/5 * * * *"
"""


class NoDispatch:
    """Measure the scheduler, not the broker."""

    def advance(self, *a, **k):
        pass

    def run_taskrun(self, *a, **k):
        pass

    def revoke(self, *a, **k):
        pass


def cleanup() -> None:
    Execution.objects.filter(namespace=NS).delete()
    TriggerEvent.objects.filter(namespace=NS).delete()
    Trigger.objects.filter(namespace=NS).delete()
    Flow.objects.filter(namespace=NS).delete()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    call_command("migrate", verbosity=0)
    cleanup()
    dispatch.use(NoDispatch())
    started = time.perf_counter()
    for i in range(n):
        save_flow(FLOW.format(i=i), actor="bench")
    print(
        f"{connection.vendor}: deployed {n} flows with a schedule in "
        f"{time.perf_counter() - started:.2f} s"
    )
    now = timezone.now()
    for _ in range(3):
        started = time.perf_counter()
        evaluate_schedules(now=now - timedelta(minutes=10))
        idle = time.perf_counter() - started
    print(f"evaluation with nothing due: {idle * 1000:.1f} ms")
    first = Trigger.objects.filter(namespace=NS).order_by("next_date").first().next_date
    Trigger.objects.filter(namespace=NS).update(next_date=first)
    started = time.perf_counter()
    fired = 0
    with CaptureQueriesContext(connection) as queries:
        while True:
            result = evaluate_schedules(now=first, batch=200)
            if not result.triggers:
                break
            fired += len(result.fired)
    took = time.perf_counter() - started
    print(
        f"{fired} schedules due at once: fired in {took:.2f} s "
        f"({fired / took:.0f} executions/s, {took / max(fired, 1) * 1000:.1f} ms each, "
        f"{len(queries) / max(fired, 1):.1f} queries each)"
    )
    print(f"load average while measuring: {os.getloadavg()[0]:.1f}")
    cleanup()


if __name__ == "__main__":
    main()
