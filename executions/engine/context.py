"""Expression variables of an execution and the RunContext given to tasks."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.db.models import Q
from django.utils import timezone

from executions.lifecycle.actor import Actor
from executions.lifecycle.labels import set_labels
from executions.lookup import count_by_flow, lookup_rows
from executions.models import TERMINAL, Cause, Execution, LogEntry, State, TaskRun
from executions.storage import ExecutionFiles
from flows.expressions import FILES_KEY, FileAccess, evaluate, format_native, render
from flows.tasks.context import TaskKilled
from orchestra.lib import levels
from orchestra.lib.secrets import mask

OUTPUT_STATES = (State.SUCCESS, State.WARNING, State.FAILED)


def outputs_map(rows: Iterable[tuple[str, str | None, Any]]) -> dict[str, Any]:
    """``outputs.<task>`` (or ``outputs.<task>[value]`` in loops) from
    (task id, value, outputs) rows ordered by attempt: later attempts win."""
    out: dict[str, Any] = {}
    for task_id, value, outputs in rows:
        if value is None:
            out[task_id] = outputs or {}
        else:
            bucket = out.setdefault(task_id, {})
            if isinstance(bucket, dict):
                bucket[value] = outputs or {}
    return out


_MISSING = object()


class ExecutionOutputs(Mapping):
    """``outputs`` of an execution, read from the database only when an
    expression reads it, one task at a time (``outputs.extract`` loads the
    rows of ``extract`` through the (execution, task_id) index).

    Most expressions never read ``outputs``; building it eagerly read every
    task run of the execution for each task and each executor pass, which
    made a ForEach over N values cost O(N²) (docs/benchmarks.md).
    """

    def __init__(self, execution_id: int):
        self.execution_id = execution_id
        self._tasks: dict[str, Any] = {}
        self._complete = False

    def _rows(self, task_id: str | None = None):
        rows = TaskRun.objects.filter(execution_id=self.execution_id).filter(
            Q(state__in=OUTPUT_STATES) | Q(flowable=True)
        )
        if task_id is not None:
            rows = rows.filter(task_id=task_id)
        return rows.order_by("attempt", "pk").values_list("task_id", "value", "outputs")

    def __getitem__(self, task_id: str) -> Any:
        found = self._tasks.get(task_id, _MISSING)
        if found is _MISSING and not self._complete and isinstance(task_id, str):
            found = outputs_map(self._rows(task_id)).get(task_id, _MISSING)
            self._tasks[task_id] = found
        if found is _MISSING:
            raise KeyError(task_id)
        return found

    def _load_all(self) -> dict[str, Any]:
        if not self._complete:
            self._tasks = outputs_map(self._rows())
            self._complete = True
        return self._tasks

    def __iter__(self) -> Iterator[str]:
        return iter(self._load_all())

    def __len__(self) -> int:
        return len(self._load_all())

    def __repr__(self) -> str:
        return repr(self._load_all())


def ancestors_of(taskrun: TaskRun) -> list[TaskRun]:
    """The flowable task runs above ``taskrun``, closest first: one small
    query per level (loops nest a few levels at most)."""
    chain: list[TaskRun] = []
    parent_id = taskrun.parent_id
    while parent_id is not None:
        parent = (
            TaskRun.objects.filter(pk=parent_id)
            .only("pk", "task_id", "value", "outputs", "parent_id")
            .first()
        )
        if parent is None:
            break
        chain.append(parent)
        parent_id = parent.parent_id
    return chain


def expression_context(
    execution: Execution,
    taskrun: TaskRun | None = None,
    *,
    outputs: Mapping[str, Any] | None = None,
    ancestors: list[TaskRun] | None = None,
) -> dict[str, Any]:
    """The variables of expressions in ``execution`` (for ``taskrun``).

    ``outputs`` defaults to a lazy view of the database and ``ancestors``
    (the task runs above ``taskrun``, closest first) to a walk up its
    parents; the executor passes what it already holds.
    """
    spec = execution.spec
    context: dict[str, Any] = {
        "flow": {
            "id": execution.flow_id,
            "namespace": execution.namespace,
            "revision": execution.revision,
        },
        "execution": {
            "id": execution.pk,
            "startDate": format_native(execution.started_at or execution.created_at),
            "state": execution.state,
            "originalId": execution.original_id or execution.pk,
            "url": f"/executions/{execution.pk}/",
        },
        "inputs": execution.inputs or {},
        "vars": spec.variables or {},
        "labels": execution.labels or {},
        "outputs": outputs if outputs is not None else ExecutionOutputs(execution.pk),
        "trigger": (execution.trigger or {}).get("variables", {}),
        "envs": {},
        FILES_KEY: FileAccess(ExecutionFiles(execution)),
    }
    if taskrun is not None:
        context["taskrun"] = {
            "id": taskrun.pk,
            "value": taskrun.value,
            "attemptsCount": taskrun.attempt - 1,
            "startDate": format_native(taskrun.started_at or timezone.now()),
            "parentId": taskrun.parent_id,
        }
        context["task"] = {"id": taskrun.task_id}
        if taskrun.pk is not None:
            context["workingDir"] = working_dir(execution.pk, taskrun.pk)
        if ancestors is None:
            ancestors = ancestors_of(taskrun)
        context.update(parents_context(ancestors))
    return context


def parents_context(ancestors: list[TaskRun]) -> dict[str, Any]:
    """``parent`` and ``parents`` (Kestra: parent = the closest loop
    iteration, parents = all loop iterations, closest first)."""
    loop_parents = [
        {
            "taskrun": {"value": parent.value, "id": parent.pk},
            "task": {"id": parent.task_id},
            "outputs": parent.outputs,
        }
        for parent in ancestors
        if parent.value is not None
    ]
    context: dict[str, Any] = {"parents": loop_parents}
    if loop_parents:
        context["parent"] = loop_parents[0]
    return context


_work_base: str | None = None


def working_dir(execution_id: int, taskrun_id: int) -> str:
    """``{{ workingDir }}``: the folder a script task runs in, known before its
    properties are rendered. Under a private (0700) folder of this process, so
    other users of the machine cannot guess or pre-create it."""
    global _work_base
    if _work_base is None or not os.path.isdir(_work_base):
        _work_base = tempfile.mkdtemp(prefix="orchestra-work-")
    return os.path.join(_work_base, f"{execution_id}-{taskrun_id}")


class EngineContext:
    """The RunContext a worker hands to a task (see flows/tasks/context.py)."""

    POLL = 0.25  # seconds between kill checks while a task waits

    def __init__(
        self,
        execution: Execution,
        taskrun: TaskRun,
        context: dict[str, Any],
        deadline: float | None,
        min_level: str = "TRACE",
    ):
        self.execution = execution
        self.taskrun = taskrun
        self.execution_id = execution.pk
        self.taskrun_id = taskrun.pk
        self.task_id = taskrun.task_id
        self.attempt = taskrun.attempt
        self.variables = context
        self.files = (
            context[FILES_KEY]._source
            if FILES_KEY in context
            else ExecutionFiles(execution)
        )
        self.deadline = deadline
        self.timeout_text = ""
        self.warnings: list[str] = []
        self.min_level = levels.rank(min_level, default=0)
        self._buffer: list[LogEntry] = []
        self._lock = threading.Lock()
        # The claim has just checked the execution under its lock: the first
        # kill check is due one POLL from now, not at once.
        self._last_check = time.monotonic()

    # expressions
    # A render checks for a kill and the task's timeout while it runs
    # (flows/limits.py), so a heavy expression stops like any other task.
    def render(self, value: Any) -> Any:
        return render(value, self.variables, check=self.check_alive)

    def evaluate(self, value: Any) -> Any:
        return evaluate(value, self.variables, check=self.check_alive)

    # logs
    def log(self, level: str, message: str) -> None:
        try:
            level = levels.normalize(level)
        except ValueError:
            level = level.upper()
        if levels.rank(level) < self.min_level:
            return
        if level == "WARN":
            self.warnings.append(message)
        with self._lock:
            self._buffer.append(
                LogEntry(
                    execution_id=self.execution_id,
                    taskrun_id=self.taskrun_id,
                    task_id=self.task_id,
                    attempt=self.attempt,
                    level=level,
                    timestamp=timezone.now(),
                    message=mask(str(message)),
                )
            )
        if len(self._buffer) >= 50:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch:
            LogEntry.objects.bulk_create(batch)
            Execution.objects.filter(pk=self.execution_id).update(
                progress_at=timezone.now()
            )

    # liveness
    def check_alive(self) -> None:
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            raise TaskKilled(f"timed out after {self.timeout_text}")
        if now - self._last_check < self.POLL:
            return
        self._last_check = now
        self.flush()
        state = (
            Execution.objects.filter(pk=self.execution_id)
            .values_list("state", flat=True)
            .first()
        )
        if state is None or state == State.KILLING or state in TERMINAL:
            raise TaskKilled("execution is being stopped")
        tr_state = (
            TaskRun.objects.filter(pk=self.taskrun_id)
            .values_list("state", flat=True)
            .first()
        )
        if tr_state != State.RUNNING:
            raise TaskKilled(f"task run was moved to {tr_state} by another process")

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + max(seconds, 0)
        while True:
            self.check_alive()
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            wait = min(remaining, self.POLL)
            if self.deadline is not None:
                wait = min(wait, max(self.deadline - time.monotonic(), 0.001))
            time.sleep(wait)

    # execution
    def set_labels(self, labels: dict[str, str]) -> None:
        set_labels(
            self.execution_id,
            labels,
            actor=Actor.system(self.task_id, Cause.WORKER),
            reason=f"Labels task '{self.task_id}'",
        )
        self.variables["labels"] = {**self.variables.get("labels", {}), **labels}

    # storage
    def put_file(self, name: str, data: Any) -> str:
        return self.files.save(self.task_id, self.taskrun_id, name, data)

    def read_file(self, uri: str) -> bytes:
        """Only files of this execution (or given to it): StorageError otherwise."""
        return self.files.read(uri)

    def query_executions(self, **filters: Any) -> list[dict[str, Any]]:
        return lookup_rows(**filters)

    def count_executions(self, **filters: Any) -> list[dict[str, Any]]:
        return count_by_flow(**filters)


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)
