"""Retention of ``TriggerEvent`` rows: every fired, skipped or failed date
and every flow-trigger firing is a row, so without a sweep the table only
grows. Beat runs ``purge_trigger_events`` every hour.

Rows older than ORCHESTRA_TRIGGER_EVENT_RETENTION_DAYS (by ``created_at``,
the ``trigger_event_created`` index) go, in batches of
ORCHESTRA_TRIGGER_EVENT_PURGE_BATCH so no statement holds many row locks or
runs for long; a pass stops after ``max_batches`` and says whether more is
left (the Celery task then enqueues itself again). PENDING rows are work a
crash left behind (flow.process_pending picks them up) and are kept.

A schedule's next date lives on its ``Trigger`` row, so purging never makes
a date fire twice on its own; only a backfill over a purged range would
start those dates again (it sees no record that they fired).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from executions.models import TriggerEvent
from orchestra.lib.purge import Purge, delete_in_batches


def purge_trigger_events(
    now: datetime | None = None,
    *,
    days: int | None = None,
    batch: int | None = None,
    max_batches: int = 20,
) -> Purge:
    """Delete trigger events older than ``days`` (default: the setting; 0
    keeps them forever), ``batch`` rows per DELETE, at most ``max_batches``."""
    days = settings.ORCHESTRA_TRIGGER_EVENT_RETENTION_DAYS if days is None else days
    batch = batch or settings.ORCHESTRA_TRIGGER_EVENT_PURGE_BATCH
    if days <= 0:
        return Purge()
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = (
        TriggerEvent.objects.filter(created_at__lt=cutoff)
        .exclude(status=TriggerEvent.Status.PENDING)
        .order_by("created_at")
    )
    return delete_in_batches(old, batch=batch, max_batches=max_batches)
