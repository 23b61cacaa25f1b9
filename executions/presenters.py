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
        "originalId": execution.original_id,
        "error": execution.error or None,
        "createdDate": _ts(execution.created_at),
        "startDate": _ts(execution.started_at),
        "endDate": _ts(execution.ended_at),
        "duration": round(duration.total_seconds(), 3) if duration else None,
    }
    if taskruns:
        data["taskRuns"] = [
            taskrun_as_dict(tr)
            for tr in execution.taskruns.select_related("worker").order_by("id")
        ]
    return data


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
