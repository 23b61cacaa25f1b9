"""``scheduleDate``: a child execution (Subflow, ForEachItem) created now that
starts at a given time. It waits as CREATED; its ``advance`` is sent with a
Celery countdown and ``not_yet`` sends it again when it arrives early
(``liveness.start_scheduled`` is the net for a lost message).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from executions import dispatch
from executions.models import Execution
from flows.tasks.context import TaskFailed
from orchestra.lib.dates import parse_datetime


def not_yet(execution: Execution) -> bool:
    """A CREATED execution scheduled for later (under its lock): True, and
    its start is sent again for the right time, when the message came early."""
    when = execution.scheduled_at
    if when is None:
        return False
    seconds = (when - timezone.now()).total_seconds()
    if seconds <= 1:
        return False
    dispatch.get().advance(execution.pk, countdown=seconds)
    return True


def schedule_date(props) -> Any:
    """The rendered ``scheduleDate`` as an aware datetime (None when unset);
    TaskFailed with the accepted forms otherwise."""
    value = getattr(props, "scheduleDate", None)
    if value in (None, ""):
        return None
    try:
        return parse_datetime(value, epoch=True)
    except (TypeError, ValueError, OverflowError, OSError):
        raise TaskFailed(
            f"scheduleDate: {str(value)[:80]!r} is not a date-time; use ISO 8601 "
            "such as 2030-01-31T08:00:00Z or an expression such as "
            "\"{{ now() | dateAdd(1, 'HOURS') }}\""
        ) from None
