"""Retries: the next attempt of a failed task run, when its retry policy
allows one. Used by the worker after a failure and by the liveness sweep for
task runs a dead worker held."""

from __future__ import annotations

from django.utils import timezone

from executions.models import LogEntry, State, TaskRun
from orchestra.lib.secrets import mask


def will_retry(tr: TaskRun, node) -> bool:
    """Whether the task's retry policy allows another attempt after ``tr``."""
    retry = node.props.retry
    if retry is None or tr.attempt >= retry.attempts_allowed():
        return False
    first = (
        TaskRun.objects.filter(
            execution_id=tr.execution_id,
            task_id=tr.task_id,
            parent_id=tr.parent_id,
            value=tr.value,
            attempt=1,
        )
        .values_list("started_at", flat=True)
        .first()
    )
    if hasattr(retry.maxDuration, "total_seconds") and first:
        if timezone.now() - first >= retry.maxDuration:
            return False
    return True


def schedule_retry(tr: TaskRun, node, reason: str = "") -> TaskRun | None:
    """Create the next attempt if the task's retry policy allows one."""
    if not will_retry(tr, node):
        return None
    retry = node.props.retry
    delay = retry.delay_before(tr.attempt + 1)
    nxt = TaskRun.objects.create(
        execution_id=tr.execution_id,
        task_id=tr.task_id,
        parent_id=tr.parent_id,
        value=tr.value,
        attempt=tr.attempt + 1,
        state=State.CREATED,
        scheduled_at=timezone.now() + delay,
    )
    LogEntry.objects.create(
        execution_id=tr.execution_id,
        taskrun=nxt,
        task_id=tr.task_id,
        attempt=nxt.attempt,
        level="WARN",
        message=f"attempt {tr.attempt} failed{': ' + mask(reason) if reason else ''}; retrying "
        f"(attempt {nxt.attempt} of {retry.attempts_allowed()}) in {delay.total_seconds():g}s",
    )
    return nxt
