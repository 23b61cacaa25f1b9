"""Retention of cleanup previews: every dry run (web preview, ``--dry-run``,
``"dry_run": true``) stores a ``CleanupRun`` row, so without a sweep they pile
up (144 after one afternoon of previews). Beat runs ``purge_cleanup_previews``
every hour.

Rows still PREVIEWED (never confirmed) older than
ORCHESTRA_CLEANUP_PREVIEW_RETENTION_HOURS go, in batches, like trigger events
(executions/triggers/retention.py): a bounded number of DELETEs per pass, the
Celery task enqueues itself again when more is left. A preview cannot be
confirmed after ``cleanup.PREVIEW_TTL`` (an hour) anyway. Confirmed runs are
the audit of what was cancelled, by whom and from which preview (their
StateChange rows name them): they are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from executions.models import CleanupRun


@dataclass
class Purge:
    deleted: int = 0
    more: bool = False

    def as_dict(self) -> dict:
        return {"deleted": self.deleted, "more": self.more}


def purge_cleanup_previews(
    now: datetime | None = None,
    *,
    hours: int | None = None,
    batch: int = 1000,
    max_batches: int = 20,
) -> Purge:
    """Delete unconfirmed previews older than ``hours`` (default: the setting;
    0 keeps them forever), ``batch`` rows per DELETE, at most ``max_batches``."""
    if hours is None:
        hours = settings.ORCHESTRA_CLEANUP_PREVIEW_RETENTION_HOURS
    result = Purge()
    if hours <= 0:
        return result
    cutoff = (now or timezone.now()) - timedelta(hours=hours)
    old = CleanupRun.objects.filter(
        status=CleanupRun.Status.PREVIEWED, created_at__lt=cutoff
    ).order_by("created_at")
    for _ in range(max_batches):
        ids = list(old.values_list("pk", flat=True)[:batch])
        if ids:
            # Nothing references a preview (cancellations name confirmed runs).
            result.deleted += CleanupRun.objects.filter(pk__in=ids).delete()[0]
        if len(ids) < batch:
            return result
    result.more = old.exists()
    return result
