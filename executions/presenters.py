"""Executions as plain data, shared by the CLI's --json and the REST API."""

from __future__ import annotations

from typing import Any

from executions.models import Execution, LogEntry, TaskRun
from flows.expressions import format_native


def _ts(value) -> str | None:
    return format_native(value) if value else None


def taskrun_as_dict(tr: TaskRun) -> dict[str, Any]:
    duration = tr.duration()
    return {
        "id": tr.pk,
        "taskId": tr.task_id,
        "parentTaskRunId": tr.parent_id,
        "value": tr.value,
        "attempt": tr.attempt,
        "state": tr.state,
        "outputs": tr.outputs,
        "error": tr.error or None,
        "worker": tr.worker.name if tr.worker_id and tr.worker else None,
        "startDate": _ts(tr.started_at),
        "endDate": _ts(tr.ended_at),
        "duration": round(duration.total_seconds(), 3) if duration else None,
    }


def _state_of(tr: TaskRun) -> dict[str, Any]:
    duration = tr.duration()
    return {
        "current": tr.state,
        "startDate": _ts(tr.started_at),
        "endDate": _ts(tr.ended_at),
        "duration": round(duration.total_seconds(), 3) if duration else None,
    }


def taskrun_list(rows: list[TaskRun]) -> list[dict[str, Any]]:
    """Task runs in Kestra's shape (``taskRunList``): one entry per task,
    parent and value, its tries in ``attempts`` (we store one row per
    attempt; ``id``, state and outputs are the last attempt's)."""
    groups: dict[tuple, list[TaskRun]] = {}
    for tr in rows:
        groups.setdefault((tr.task_id, tr.parent_id, tr.value), []).append(tr)
    out = []
    for tries in groups.values():
        tries.sort(key=lambda t: (t.attempt, t.pk))
        last = tries[-1]
        out.append(
            {
                "id": last.pk,
                "taskId": last.task_id,
                "parentTaskRunId": last.parent_id,
                "value": last.value,
                "state": _state_of(last),
                "outputs": last.outputs,
                "attempts": [
                    {
                        "id": t.pk,
                        "state": _state_of(t),
                        "error": t.error or None,
                        "worker": t.worker.name if t.worker_id and t.worker else None,
                    }
                    for t in tries
                ],
            }
        )
    return out


def execution_as_dict(execution: Execution, taskruns: bool = True) -> dict[str, Any]:
    duration = execution.duration()
    data: dict[str, Any] = {
        "id": execution.pk,
        "namespace": execution.namespace,
        "flowId": execution.flow_id,
        "revision": execution.revision,
        "state": execution.state,
        "labels": execution.labels,
        "inputs": execution.inputs,
        "outputs": execution.outputs,
        "trigger": execution.trigger,
        "parentId": execution.parent_id,
        "parentTaskRunId": execution.parent_taskrun_id,
        "originalId": execution.original_id,
        "attempt": execution.attempt,
        "error": execution.error or None,
        "createdDate": _ts(execution.created_at),
        "scheduledDate": _ts(execution.scheduled_at),
        "startDate": _ts(execution.started_at),
        "endDate": _ts(execution.ended_at),
        "duration": round(duration.total_seconds(), 3) if duration else None,
    }
    if taskruns:
        rows = list(execution.taskruns.select_related("worker").order_by("id"))
        data["taskRuns"] = [taskrun_as_dict(tr) for tr in rows]
        data["taskRunList"] = taskrun_list(rows)
        data.update(links_as_dict(execution))
    return data


LINKS_SHOWN = 100


def _brief(execution: Execution, **extra: Any) -> dict[str, Any]:
    return {
        "id": execution.pk,
        "namespace": execution.namespace,
        "flowId": execution.flow_id,
        "state": execution.state,
        **extra,
    }


def links_as_dict(execution: Execution) -> dict[str, Any]:
    """Parent, children (subflows), original and replays of an execution, both
    ways, so a page or a CLI can link them. Lists show the first
    ``LINKS_SHOWN`` rows and give the full count."""
    fields = ("pk", "namespace", "flow_id", "state", "parent_taskrun_id")
    parent = None
    if execution.parent_id:
        row = Execution.objects.filter(pk=execution.parent_id).only(*fields).first()
        if row is not None:
            task = (
                TaskRun.objects.filter(pk=execution.parent_taskrun_id)
                .values_list("task_id", flat=True)
                .first()
            )
            parent = _brief(row, taskRunId=execution.parent_taskrun_id, taskId=task)
    original = None
    if execution.original_id:
        row = Execution.objects.filter(pk=execution.original_id).only(*fields).first()
        original = _brief(row) if row is not None else None
    children = execution.children.only(*fields).order_by("pk")
    replays = execution.replays.only(*fields).order_by("pk")
    shown_children = list(children[:LINKS_SHOWN])
    shown_replays = list(replays[:LINKS_SHOWN])
    return {
        "parent": parent,
        "children": [_brief(c, taskRunId=c.parent_taskrun_id) for c in shown_children],
        "childrenCount": (
            children.count()
            if len(shown_children) == LINKS_SHOWN
            else len(shown_children)
        ),
        "original": original,
        "replays": [_brief(r) for r in shown_replays],
        "replaysCount": (
            replays.count() if len(shown_replays) == LINKS_SHOWN else len(shown_replays)
        ),
    }


def log_as_dict(entry: LogEntry) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "executionId": entry.execution_id,
        "taskRunId": entry.taskrun_id,
        "taskId": entry.task_id or None,
        "attempt": entry.attempt,
        "level": entry.level,
        "timestamp": _ts(entry.timestamp),
        "message": entry.message,
    }


def gantt(execution: Execution, taskruns: list[TaskRun]) -> dict[str, Any]:
    """Bars for a Gantt chart: each task run's offset and width in % of the run."""
    from django.utils import timezone

    starts = [tr.started_at for tr in taskruns if tr.started_at]
    origin = execution.started_at or (min(starts) if starts else None)
    if origin is None:
        return {"rows": [], "total": 0.0}
    now = timezone.now()
    ends = [tr.ended_at or now for tr in taskruns if tr.started_at]
    end = execution.ended_at or max([now, *ends])
    total = max((end - origin).total_seconds(), 0.001)
    depth: dict[int, int] = {}
    rows = []
    for tr in taskruns:
        depth[tr.pk] = depth.get(tr.parent_id, -1) + 1 if tr.parent_id else 0
        if not tr.started_at:
            offset, width = None, None
        else:
            offset = (tr.started_at - origin).total_seconds() / total * 100
            width = max(
                ((tr.ended_at or now) - tr.started_at).total_seconds() / total * 100,
                0.4,
            )
        duration = tr.duration()
        rows.append(
            {
                "taskrun": tr,
                "depth": depth[tr.pk],
                "offset": round(max(offset, 0), 2) if offset is not None else None,
                "width": round(min(width, 100), 2) if width is not None else None,
                "seconds": round(duration.total_seconds(), 3) if duration else None,
            }
        )
    return {"rows": rows, "total": round(total, 3)}
