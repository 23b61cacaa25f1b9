"""The executor: decides what runs next for one execution.

``advance`` runs under a row lock on the execution, reads its task runs and
flow revision, creates the next task runs and returns the ids a worker should
run. Flowable tasks (Sequential, Parallel, If, Switch, ForEach, AllowFailure,
errors, finally) are resolved here and never reach a worker. Running it twice
changes nothing: every decision is derived from rows already stored.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from executions import dispatch
from executions.engine import control, pauses, subflows
from executions.engine.context import (
    ExecutionOutputs,
    expression_context,
    parents_context,
)
from executions.engine.flowable import RUNNING, allowed_state
from executions.engine.schedule_date import not_yet
from executions.lifecycle import machine, stop
from executions.lifecycle.actor import EXECUTOR
from executions.models import TERMINAL, Execution, LogEntry, State, TaskRun
from executions.signals import execution_advanced
from flows.expressions import ExpressionError, evaluate, truthy
from flows.spec import FlowSpec, TaskNode
from flows.spec.inputs import convert
from flows.tasks.context import TaskFailed
from orchestra.lib.secrets import mask

log = logging.getLogger("orchestra.executor")

OK_STATES = {State.SUCCESS, State.SKIPPED}


class _Row:
    """A task run as the plan sees most of them: identity and state only.

    Loading every task run's outputs (and building a model instance for
    each) on every pass made the executor O(N) heavy rows per pass, O(N²)
    over a loop of N values. Flowable task runs, whose outputs drive their
    decisions, are loaded in full (``_Plan.load``)."""

    __slots__ = ("pk", "task_id", "parent_id", "value", "attempt", "state", "flowable")

    def __init__(self, pk, task_id, parent_id, value, attempt, state, flowable):
        self.pk = pk
        self.task_id = task_id
        self.parent_id = parent_id
        self.value = value
        self.attempt = attempt
        self.state = state
        self.flowable = flowable


class _Plan:
    def __init__(self, execution: Execution, spec: FlowSpec, taskruns: list):
        self.execution = execution
        self.spec = spec
        # The latest attempt of each (task, parent, value); full TaskRun
        # instances for flowables and for what this pass creates, _Row
        # otherwise.
        self.latest: dict[tuple, Any] = {}
        # Values started under each parent (ForEach: which iterations began).
        self.values_under: dict[int | None, set] = {}
        self.flowables: dict[int, TaskRun] = {}
        for tr in taskruns:
            self._index(tr)
        self.runnable: list[TaskRun] = []
        # Pause task runs reached in this pass: (task run, wake-up time or None).
        self.pauses: list[tuple[TaskRun, Any]] = []
        self._context: dict[str, Any] | None = None

    @classmethod
    def load(cls, execution: Execution) -> _Plan:
        """Two indexed queries whatever the flow: the flowable task runs in
        full, then the identity and state of the others. Below a finished
        flowable nothing is read (resolution stops at its state), so a loop
        that has ended costs nothing to the passes after it."""
        flowables = list(TaskRun.objects.filter(execution=execution, flowable=True))
        ended = [tr.pk for tr in flowables if tr.state in TERMINAL]
        rows = (
            TaskRun.objects.filter(execution=execution, flowable=False)
            .exclude(parent_id__in=ended)
            .values_list(*_Row.__slots__)
        )
        return cls(execution, execution.spec, [*flowables, *(_Row(*r) for r in rows)])

    def _index(self, tr) -> None:
        key = (tr.task_id, tr.parent_id, tr.value)
        current = self.latest.get(key)
        if current is None or (tr.attempt, tr.pk) > (current.attempt, current.pk):
            self.latest[key] = tr
        self.values_under.setdefault(tr.parent_id, set()).add(tr.value)
        if tr.flowable:
            self.flowables[tr.pk] = tr

    def ancestors(self, parent: TaskRun | None) -> list[TaskRun]:
        """``parent`` and the task runs above it, closest first (only
        flowables have children, and the plan holds those in full)."""
        chain = []
        while parent is not None:
            chain.append(parent)
            parent = self.flowables.get(parent.parent_id)
        return chain

    def outputs(self) -> ExecutionOutputs:
        return ExecutionOutputs(self.execution.pk)

    def context(
        self, parent: TaskRun | None, value: str | None, taskrun: TaskRun | None = None
    ) -> dict[str, Any]:
        """Expression variables for a task under ``parent`` in iteration
        ``value`` (or for ``taskrun`` itself). ``outputs`` is read lazily."""
        if taskrun is not None:
            return expression_context(
                self.execution,
                taskrun,
                outputs=self.outputs(),
                ancestors=self.ancestors(self.flowables.get(taskrun.parent_id)),
            )
        if self._context is None:
            self._context = expression_context(self.execution, outputs=self.outputs())
        ctx = dict(self._context)
        if parent is not None or value is not None:
            ctx.update(parents_context(self.ancestors(parent)))
            ctx["taskrun"] = {"value": value}
        return ctx

    def _log(self, level: str, message: str, tr: TaskRun | None = None) -> None:
        LogEntry.objects.create(
            execution_id=self.execution.pk,
            taskrun=tr,
            task_id=tr.task_id if tr else "",
            level=level,
            message=mask(message),
        )

    def _create(
        self,
        node: TaskNode,
        parent: TaskRun | None,
        value: str | None,
        state: str,
        **fields: Any,
    ) -> TaskRun:
        if fields.get("error"):
            fields["error"] = mask(fields["error"])
        tr = TaskRun.objects.create(
            execution_id=self.execution.pk,
            task_id=node.id,
            parent=parent,
            value=value,
            state=state,
            flowable=node.flowable,
            **fields,
        )
        if state != State.CREATED:
            machine.record_history(
                [
                    machine.Entry(
                        self.execution.pk,
                        state,
                        taskrun_id=tr.pk,
                        reason=fields.get("error", ""),
                    )
                ],
                actor=EXECUTOR,
            )
        self._index(tr)
        self._context = None
        return tr

    def _finish(self, tr: TaskRun, state: str, reason: str = "", **fields: Any) -> None:
        machine.transition_taskrun(
            tr, state, reason=reason, fields=fields, actor=EXECUTOR
        )
        self._context = None

    # --- resolution -------------------------------------------------------
    def resolve_list(
        self, nodes: list[TaskNode], parent: TaskRun | None, value: str | None
    ) -> str:
        result = State.SUCCESS
        for node in nodes:
            if node.props.disabled:
                continue
            state = self.resolve_node(node, parent, value)
            if state == RUNNING:
                return RUNNING
            if state in (State.FAILED, State.KILLED, State.CANCELLED):
                if node.props.allowFailure:
                    if not node.props.allowWarning:
                        result = State.WARNING
                    continue
                return state if state != State.CANCELLED else State.FAILED
            if state == State.WARNING and not node.props.allowWarning:
                result = State.WARNING
        return result

    def resolve_node(
        self, node: TaskNode, parent: TaskRun | None, value: str | None
    ) -> str:
        tr = self.latest.get((node.id, parent.pk if parent else None, value))
        attempt = 1
        if tr is not None and tr.state == State.RESTARTED:
            # A restart superseded this attempt. Containers run again in place
            # (their successful children keep their outputs); anything else
            # gets a new attempt.
            if node.flowable and (node.children or node.case_children):
                machine.transition_taskrun(
                    tr,
                    State.RUNNING,
                    reason="restarted",
                    fields={"attempt": tr.attempt + 1, "ended_at": None, "error": ""},
                    actor=EXECUTOR,
                )
            elif node.flowable and subflows.restart_in_place(self, node, tr):
                pass  # a Subflow/ForEachItem re-runs its failed children
            else:
                attempt, tr = tr.attempt + 1, None
        if tr is None:
            try:
                should_run = self._should_run(node, parent, value)
            except ExpressionError as exc:
                message = f"runIf: {exc.message}"
                tr = self._create(
                    node,
                    parent,
                    value,
                    State.FAILED,
                    error=message,
                    ended_at=timezone.now(),
                    attempt=attempt,
                )
                self._log("ERROR", f"{node.id}: {message}", tr)
                return State.FAILED
            if not should_run:
                self._create(
                    node,
                    parent,
                    value,
                    State.SKIPPED,
                    ended_at=timezone.now(),
                    attempt=attempt,
                )
                return State.SUCCESS
            if not node.flowable:
                tr = self._create(node, parent, value, State.CREATED, attempt=attempt)
                self.runnable.append(tr)
                return RUNNING
            tr = self._create(
                node,
                parent,
                value,
                State.RUNNING,
                started_at=timezone.now(),
                attempt=attempt,
            )
        if tr.state in TERMINAL:
            return State.SUCCESS if tr.state in OK_STATES else tr.state
        if not node.flowable:
            return RUNNING
        try:
            state = FLOWABLES[node.type.name](self, node, tr, value)
        except (ExpressionError, TaskFailed) as exc:
            message = exc.message if isinstance(exc, ExpressionError) else str(exc)
            self._log("ERROR", f"{node.id}: {message}", tr)
            self._finish(tr, State.FAILED, reason=message, error=message)
            return State.FAILED
        if state != RUNNING:
            state = self._local_handlers(node, tr, value, state)
        if state != RUNNING:
            state = allowed_state(node, state)
        if state != RUNNING and tr.state not in TERMINAL:
            self._finish(tr, State.SUCCESS if state in OK_STATES else state)
        if state in OK_STATES:
            return State.SUCCESS
        return state

    def _local_handlers(
        self, node: TaskNode, tr: TaskRun, value: str | None, state: str
    ) -> str:
        """A flowable's own ``errors`` and ``finally`` (Kestra's
        FlowableUtils.resolveState): errors run once its children failed for
        good, and the flowable still ends in its children's state, whatever
        the handlers did; a failing ``finally`` fails it."""
        if state in (State.FAILED, State.KILLED) and node.children.get("errors"):
            if self.resolve_list(node.children["errors"], tr, value) == RUNNING:
                return RUNNING
        if node.children.get("finally"):
            after = self.resolve_list(node.children["finally"], tr, value)
            if after == RUNNING:
                return RUNNING
            if after == State.FAILED:
                return State.FAILED
            if after == State.WARNING and state in OK_STATES:
                return State.WARNING
        return state

    def _should_run(
        self, node: TaskNode, parent: TaskRun | None, value: str | None
    ) -> bool:
        conditions = []
        if node.props.runIf is not None:
            conditions.append(node.props.runIf)
        for condition in node.props.conditions or []:
            if "expression" in condition:
                conditions.append(condition["expression"])
        # A broken condition raises ExpressionError: the task fails with the
        # reason rather than being skipped silently.
        return all(truthy(evaluate(c, self.context(parent, value))) for c in conditions)

    def resolve_root(self) -> str:
        main = self.resolve_list(self.spec.tasks, None, None)
        if main == RUNNING:
            return RUNNING
        final = main
        if main == State.FAILED and self.spec.errors:
            errors_state = self.resolve_list(self.spec.errors, None, None)
            if errors_state == RUNNING:
                return RUNNING
        if self.spec.finally_:
            finally_state = self.resolve_list(self.spec.finally_, None, None)
            if finally_state == RUNNING:
                return RUNNING
            if finally_state == State.FAILED:
                final = State.FAILED
            elif finally_state == State.WARNING and final == State.SUCCESS:
                final = State.WARNING
        return final

    # --- flowables -------------------------------------------------------
    def once(self, tr: TaskRun, key: str, compute) -> Any:
        """Evaluate a flowable's expression once and keep it in its outputs, so
        later passes (and restarts) see the same decision."""
        outputs = tr.outputs or {}
        if key not in outputs:
            outputs = {**outputs, key: compute()}
            TaskRun.objects.filter(pk=tr.pk).update(outputs=outputs)
            tr.outputs = outputs
        return outputs[key]


FLOWABLES = {
    **control.FLOWABLES,
    **subflows.FLOWABLES,
    **pauses.FLOWABLES,
}


def _flow_outputs(plan: _Plan) -> dict[str, Any]:
    outputs = {}
    context = plan.context(None, None)
    for output in plan.spec.outputs:
        value = evaluate(output["value"], context)
        if str(output.get("type", "")).upper() == "STRING" and isinstance(
            value, dict | list
        ):
            # Kestra renders a structure given to a STRING output as its JSON.
            value = json.dumps(value, separators=(",", ":"), default=str)
        if output.get("type") and value is not None:
            # Declared types hold for outputs as for inputs: INT is a number.
            try:
                value = convert(output, value)
            except ValueError as exc:
                raise ExpressionError(f"output '{output['id']}': {exc}") from None
        outputs[output["id"]] = value
    return outputs


def advance(execution_id: int) -> list[TaskRun]:
    """Move one execution forward; return the task runs now ready to run.

    Call it from anywhere (executor task, worker after a task, sweeps): it
    takes the execution's row lock, so concurrent calls serialize.
    """
    with transaction.atomic(savepoint=False):
        execution = (
            Execution.objects.select_for_update(of=("self",))
            .select_related("flow_revision")
            .filter(pk=execution_id)
            .first()
        )
        if execution is None or execution.state in TERMINAL:
            return []
        if execution.state == State.KILLING:
            stop.settle(execution, actor=EXECUTOR, reason="all task runs stopped")
            return []
        if execution.state == State.QUEUED:
            return []
        if execution.state == State.CREATED and not_yet(execution):
            return []
        if execution.state == State.PAUSED and not pauses.wake_due(execution):
            return []
        if execution.state in (State.CREATED, State.RESTARTED):
            machine.transition(
                execution,
                State.RUNNING,
                reason="started" if execution.state == State.CREATED else "restarted",
                actor=EXECUTOR,
            )
        plan = _Plan.load(execution)
        result = plan.resolve_root()
        if result != RUNNING:
            _finish_execution(plan, result)
        else:
            execution_advanced.send(
                sender=Execution, execution=execution, spec=plan.spec
            )
            if plan.pauses:
                pauses.enter_pause(plan)
        ready = [tr for tr in plan.runnable if tr.state == State.CREATED]
        for tr in ready:
            # A worker chaining into it needs no reload of either.
            tr.execution = execution
            tr.ancestors = plan.ancestors(plan.flowables.get(tr.parent_id))
        return ready


def _finish_execution(plan: _Plan, result: str) -> None:
    execution = plan.execution
    fields: dict[str, Any] = {}
    reason = ""
    try:
        fields["outputs"] = mask(_flow_outputs(plan))
    except ExpressionError as exc:
        # On a failed run, outputs of tasks that never ran cannot render:
        # that is logged, but the task's failure stays the reason.
        plan._log(
            "ERROR" if result != State.FAILED else "WARN",
            f"flow outputs: {exc.message}",
        )
        if result != State.FAILED:
            result = State.FAILED
            reason = f"flow outputs: {exc.message}"
    if result == State.FAILED and not reason:
        last = (
            TaskRun.objects.filter(execution=execution, state=State.FAILED)
            .filter(Q(flowable=False) | ~Q(error=""))
            .order_by("-pk")
            .values_list("task_id", "error")
            .first()
        )
        if last:
            reason = f"task '{last[0]}' failed: {last[1]}".strip()
    fields["error"] = reason if result == State.FAILED else ""
    machine.transition(execution, result, reason=reason, fields=fields, actor=EXECUTOR)


def advance_and_dispatch(execution_id: int, keep_one: bool = False) -> int | None:
    """Advance; send the new task runs to the queue. With ``keep_one``, the
    first one that may start now is returned for the caller to run."""
    kept = advance_and_keep(execution_id, keep_one)
    return kept.pk if kept is not None else None


def advance_and_keep(execution_id: int, keep_one: bool) -> TaskRun | None:
    with transaction.atomic(savepoint=False):
        ready = advance(execution_id)
        kept = None
        now = timezone.now()
        for tr in ready:
            if (
                keep_one
                and kept is None
                and (tr.scheduled_at is None or tr.scheduled_at <= now)
            ):
                kept = tr
                continue
            dispatch.get().run_taskrun(tr.pk, eta=tr.scheduled_at)
    return kept
