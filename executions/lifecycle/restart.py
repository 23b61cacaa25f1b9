"""Restart: re-run the failed branch of an ended execution, in place."""

from __future__ import annotations

from django.db import transaction

from executions import dispatch
from executions.lifecycle import admission, machine, rules
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError, locked, spec_of
from executions.models import Execution, State, TaskRun

# Task runs that did not finish: they run again on a restart.
UNFINISHED = frozenset({State.FAILED, State.KILLED, State.CANCELLED})


def latest_attempts(taskruns: list[TaskRun]) -> list[TaskRun]:
    """The latest attempt of each (task, parent, value), in creation order."""
    latest: dict[tuple, TaskRun] = {}
    for tr in taskruns:
        key = (tr.task_id, tr.parent_id, tr.value)
        if key not in latest or (tr.attempt, tr.pk) > (
            latest[key].attempt,
            latest[key].pk,
        ):
            latest[key] = tr
    return sorted(latest.values(), key=lambda t: t.pk)


@transaction.atomic
def restart(execution_id: int, *, actor: Actor, reason: str = "") -> Execution:
    """Failed (or killed) task runs and their failed parents are marked
    RESTARTED; the executor gives each a new attempt while successful task
    runs keep their outputs. The errors and finally branches run again as
    the new outcome requires. Execution.attempt counts the restarts.
    """
    execution = locked(execution_id)
    rules.check("restart", execution, actor)
    spec = spec_of(execution)
    # The same admission as a new execution: at the flow's limit a restart
    # waits in QUEUED for a slot. CANCEL and FAIL would only end it again at
    # once, rewriting its outcome, so the restart is refused instead.
    over = admission.over_limit(execution, spec)
    if over is not None and over.state != State.QUEUED:
        raise ActionError(
            f"execution {execution_id} cannot restart now: {over.reason}; "
            "restart it when a slot is free"
        )
    latest = latest_attempts(list(execution.taskruns.all()))
    children: dict[int | None, list[TaskRun]] = {}
    for tr in latest:
        children.setdefault(tr.parent_id, []).append(tr)
    handlers = {n.id for n in (*spec.errors, *spec.finally_)}
    chosen: list[TaskRun] = []

    def failed_branch(tr: TaskRun) -> None:
        if tr.state in UNFINISHED:
            chosen.append(tr)
            for child in children.get(tr.pk, []):
                failed_branch(child)

    def whole(tr: TaskRun) -> None:
        if State.RESTARTED in machine.TASKRUN_ALLOWED.get(tr.state, ()):
            chosen.append(tr)
        for child in children.get(tr.pk, []):
            whole(child)

    for root in children.get(None, []):
        (whole if root.task_id in handlers else failed_branch)(root)
    attempt = execution.attempt + 1
    why = reason or f"restarted (attempt {attempt})"
    for tr in chosen:
        machine.transition_taskrun(tr, State.RESTARTED, actor=actor, reason=why)
    machine.transition(
        execution,
        State.RESTARTED,
        actor=actor,
        reason=why,
        details={"attempt": attempt, "taskRuns": [tr.pk for tr in chosen]},
        fields={"attempt": attempt, "error": "", "stop_state": ""},
    )
    if over is not None:
        admission.hold_back(execution, over)  # started by release() later
    else:
        dispatch.get().advance(execution.pk)
    return execution
