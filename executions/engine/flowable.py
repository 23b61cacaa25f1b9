"""What the flowables share: the RUNNING result, a task run's expression
context, and finishing or updating a flowable task run.

A flowable (control.py, subflows.py, pauses.py) takes the executor's plan, its
task node, its task run and the iteration value, and returns a state or
RUNNING. None of them holds a worker thread.
"""

from __future__ import annotations

from typing import Any

from executions.lifecycle import machine
from executions.lifecycle.actor import EXECUTOR
from executions.models import State, TaskRun

ALLOW_FAILURE = "io.kestra.plugin.core.flow.AllowFailure"
RUNNING = "RUNNING"  # resolution result: something is still in flight


def task_context(plan, tr: TaskRun, **taskrun_extra: Any) -> dict[str, Any]:
    context = plan.context(None, None, taskrun=tr)
    context["taskrun"] = {**context.get("taskrun", {}), **taskrun_extra}
    return context


def finish(plan, tr: TaskRun, state: str, reason: str = "", **fields: Any) -> str:
    machine.transition_taskrun(tr, state, reason=reason, fields=fields, actor=EXECUTOR)
    plan._context = None
    return state


def save_outputs(tr: TaskRun, outputs: dict[str, Any]) -> None:
    TaskRun.objects.filter(pk=tr.pk).update(outputs=outputs)
    tr.outputs = outputs


def allowed_state(node, state: str) -> str:
    """The state a task run ends in once ``allowFailure``/``allowWarning``
    apply (Kestra's Worker and Execution.guessFinalState): a failure it may
    have is a WARNING, a warning it may have is a SUCCESS."""
    if state == State.FAILED and node.props.allowFailure:
        state = State.WARNING
    elif state in (State.FAILED, State.KILLED) and node.type.name == ALLOW_FAILURE:
        state = State.WARNING
    if state == State.WARNING and node.props.allowWarning:
        state = State.SUCCESS
    return state
