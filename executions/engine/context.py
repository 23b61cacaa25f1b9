"""Expression variables of an execution and the RunContext given to tasks."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.db import Error as DatabaseError
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from executions.engine.lease import lease_lost
from executions.lifecycle.actor import Actor
from executions.lifecycle.labels import set_labels
from executions.lookup import count_by_flow, lookup_rows
from executions.models import TERMINAL, Cause, Execution, LogEntry, State, TaskRun
from executions.storage import ExecutionFiles
from flows.expressions import (
    FILES_KEY,
    SECRETS_KEY,
    FileAccess,
    evaluate,
    format_native,
    render,
)
from flows.namespaces import NamespaceUnreachable, check_reach, reachable_q
from flows.secrets import scope as secret_scope
from flows.tasks.context import TaskFailed, TaskKilled
from orchestra.lib import levels
from orchestra.lib.dotted import nest
from orchestra.lib.labels import expression_labels
from orchestra.lib.secrets import mask

OUTPUT_STATES = (State.SUCCESS, State.WARNING, State.FAILED)


def outputs_map(
    rows: Iterable[tuple[str, str | None, Any]],
    outer: Mapping[tuple, tuple] | None = None,
) -> dict[str, Any]:
    """``outputs.<task>`` (or ``outputs.<task>[value]`` in loops) from
    (task id, value, outputs[, parent id]) rows ordered by attempt: later
    attempts win. In nested loops the outer values come first, as in
    Kestra: ``outputs.<task>[outer][inner]``; ``outer`` maps a parent id to
    the values of the loops around it (``loop_levels``)."""
    out: dict[str, Any] = {}
    for task_id, value, outputs, *rest in rows:
        if value is None:
            out[task_id] = outputs or {}
            continue
        path = [*(outer or {}).get(rest[0] if rest else None, ()), value]
        if len(path) > 1 and path[-2] == value:
            path.pop()  # a child of a non-loop flowable inside the iteration
        bucket = out.setdefault(task_id, {})
        for level in path[:-1]:
            if not isinstance(bucket, dict):
                break
            bucket = bucket.setdefault(level, {})
        if isinstance(bucket, dict):
            bucket[path[-1]] = outputs or {}
    return out


def loop_levels(execution_id: int) -> dict[int, tuple]:
    """For each flowable task run: the loop values a child of it sits in,
    outermost first. A value is a new level where a loop (a task run that
    keeps its ``values``) starts it."""
    rows = TaskRun.objects.filter(execution_id=execution_id, flowable=True)
    loops = set(rows.filter(outputs__has_key="values").values_list("pk", flat=True))
    nodes = {
        pk: (parent, value)
        for pk, parent, value in rows.values_list("pk", "parent_id", "value")
    }
    levels: dict[int, tuple] = {}

    def of(pk: int | None) -> tuple:
        if pk is None or pk not in nodes:
            return ()
        if pk not in levels:
            parent, value = nodes[pk]
            above = of(parent)
            if value is not None and parent in loops:
                above = (*above, value)
            levels[pk] = above
        return levels[pk]

    for pk in nodes:
        of(pk)
    return levels


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
        self._levels: dict[int, tuple] | None = None

    def _rows(self, task_id: str | None = None):
        rows = TaskRun.objects.filter(execution_id=self.execution_id).filter(
            Q(state__in=OUTPUT_STATES) | Q(flowable=True)
        )
        if task_id is not None:
            rows = rows.filter(task_id=task_id)
        return rows.order_by("attempt", "pk").values_list(
            "task_id", "value", "outputs", "parent_id"
        )

    def _outer(self, rows) -> dict[int, tuple]:
        # Nested loops only: one more query, for the loops' own task runs.
        if self._levels is None:
            parents = {r[3] for r in rows if r[1] is not None and r[3] is not None}
            self._levels = loop_levels(self.execution_id) if parents else {}
        return self._levels

    def __getitem__(self, task_id: str) -> Any:
        found = self._tasks.get(task_id, _MISSING)
        if found is _MISSING and not self._complete and isinstance(task_id, str):
            rows = list(self._rows(task_id))
            found = outputs_map(rows, self._outer(rows)).get(task_id, _MISSING)
            self._tasks[task_id] = found
        if found is _MISSING:
            raise KeyError(task_id)
        return found

    def _load_all(self) -> dict[str, Any]:
        if not self._complete:
            rows = list(self._rows())
            self._tasks = outputs_map(rows, self._outer(rows))
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
        "inputs": nest(execution.inputs or {}),
        "vars": spec.variables or {},
        "labels": expression_labels(execution.labels),
        "outputs": outputs if outputs is not None else ExecutionOutputs(execution.pk),
        "trigger": (execution.trigger or {}).get("variables", {}),
        "envs": {},
        FILES_KEY: FileAccess(ExecutionFiles(execution)),
        SECRETS_KEY: secret_scope(execution.namespace),
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
_work_key = secrets.token_bytes(16)


def working_dir(execution_id: int, taskrun_id: int) -> str:
    """``{{ workingDir }}``: the folder a script task runs in, known before its
    properties are rendered. Under a private folder of this process, so other
    users of the machine cannot guess or pre-create it; its name ends with a
    keyed hash, so a script running as the shared script user (which may pass
    through that folder) cannot guess another run's folder either."""
    global _work_base
    if _work_base is None or not os.path.isdir(_work_base):
        _work_base = tempfile.mkdtemp(prefix="orchestra-work-")
    name = f"{execution_id}-{taskrun_id}"
    tag = hmac.new(_work_key, name.encode(), hashlib.sha256).hexdigest()[:16]
    return os.path.join(_work_base, f"{name}-{tag}")


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
        # The claiming worker: the lease checked before side effects.
        self.worker_id = taskrun.worker_id
        self.fenced = ""
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
            try:
                self.flush()
            except DatabaseError:
                connection.close()  # kept in the buffer until it answers

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch:
            try:
                LogEntry.objects.bulk_create(batch)
            except Exception:
                # Kept for the next flush, or the outbox if the database
                # stays away until the task ends.
                with self._lock:
                    self._buffer[:0] = batch
                raise
            Execution.objects.filter(pk=self.execution_id).update(
                progress_at=timezone.now()
            )

    def unflushed(self) -> list[LogEntry]:
        with self._lock:
            return list(self._buffer)

    # liveness
    def check_alive(self) -> None:
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            raise TaskKilled(f"timed out after {self.timeout_text}")
        fenced = lease_lost(self.worker_id)
        if fenced:
            self.fenced = fenced
            raise TaskKilled(f"stopped: {fenced}")
        if now - self._last_check < self.POLL:
            return
        self._last_check = now
        try:
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
        except DatabaseError:
            # The database is away: nothing says to stop. The logs wait in
            # the buffer; the outcome, if it comes first, waits in the outbox.
            connection.close()

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
        self.execution.labels = {**(self.execution.labels or {}), **labels}
        self.variables["labels"] = expression_labels(self.execution.labels)

    # storage
    def put_file(self, name: str, data: Any) -> str:
        return self.files.save(self.task_id, self.taskrun_id, name, data)

    def read_file(self, uri: str) -> bytes:
        """Only files of this execution (or given to it): StorageError otherwise."""
        return self.files.read(uri)

    # Lookup and Count see the flow's namespace subtree and the namespaces
    # that allow it (flows/namespaces.py); a named target it may not reach
    # fails the task without saying what that namespace holds.
    def _reach(self, target: str) -> None:
        try:
            check_reach(self.execution.namespace, self.execution.flow_id, target)
        except NamespaceUnreachable as exc:
            raise TaskFailed(str(exc)) from None

    def query_executions(self, **filters: Any) -> list[dict[str, Any]]:
        if filters.get("namespace"):
            self._reach(str(filters["namespace"]))
        return lookup_rows(scope=reachable_q(self.execution.namespace), **filters)

    def count_executions(self, **filters: Any) -> list[dict[str, Any]]:
        for namespace in [
            *(ns for ns, _ in filters.get("flows") or []),
            *(filters.get("namespaces") or []),
        ]:
            self._reach(str(namespace))
        return count_by_flow(scope=reachable_q(self.execution.namespace), **filters)


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)
