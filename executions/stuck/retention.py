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

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from executions.models import CleanupRun
from orchestra.lib.purge import Purge, delete_in_batches


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
    if hours <= 0:
        return Purge()
    cutoff = (now or timezone.now()) - timedelta(hours=hours)
    # Nothing references a preview (cancellations name confirmed runs).
    old = CleanupRun.objects.filter(
        status=CleanupRun.Status.PREVIEWED, created_at__lt=cutoff
    ).order_by("created_at")
    return delete_in_batches(old, batch=batch, max_batches=max_batches)
