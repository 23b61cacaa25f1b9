"""When a worker, or a task run on it, counts as lost: the one rule that the
liveness sweep (engine) and stuck detection (stuck) both apply."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from django.conf import settings


def liveness_timeout() -> timedelta:
    """Silence after which a worker is declared dead (missed beats × interval)."""
    return timedelta(
        seconds=settings.ORCHESTRA_HEARTBEAT_SECONDS
        * settings.ORCHESTRA_MISSED_HEARTBEATS
    )


def unreported(
    taskrun_id: int,
    claimed_at: float | None,
    running: Collection[int] | None,
    last_beat: float | None,
) -> bool:
    """True when a live worker's heartbeats stopped naming a task run it
    claimed: it lost the run (its outcome could not be recorded, its thread
    died) though the process beats on. Times are epoch seconds. A claim gets
    the liveness timeout first, so a run is never judged on beats sent before
    it was taken up; a worker that does not report (``running`` None) is
    judged by its beats alone."""
    if running is None or claimed_at is None or last_beat is None:
        return False
    if taskrun_id in running:
        return False
    return last_beat - claimed_at >= liveness_timeout().total_seconds()
