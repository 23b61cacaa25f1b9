"""The executor's side of Pause.

A Pause moves its task run to PAUSED and the execution to PAUSED; it ends
through ``lifecycle.resume`` or, for a delay or timeout, through an ``advance``
sent with a Celery countdown (``liveness.wake_paused`` in the sweep is the net
for a lost message).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from executions import dispatch
from executions.engine.context import expression_context
from executions.engine.flowable import RUNNING, task_context
from executions.engine.props import render_props
from executions.lifecycle import machine, stop
from executions.lifecycle.actor import EXECUTOR
from executions.lifecycle.resume import after_pause
from executions.models import Execution, State, StateChange, TaskRun

log = logging.getLogger("orchestra.executor")

PAUSE = "io.kestra.plugin.core.flow.Pause"


def pause_plan(props) -> tuple[timedelta | None, str]:
    """When a pause ends by itself and how: (after, behavior)."""
    candidates = []
    for value, default in (
        (props.delay, "RESUME"),
        (props.pauseDuration, "RESUME"),
        (props.timeout, "FAIL"),
    ):
        if isinstance(value, timedelta):
            behavior = props.behavior or default
            if default == "FAIL" and behavior == "RESUME":
                behavior = "FAIL"
            candidates.append((value, behavior))
    if not candidates:
        return None, ""
    return min(candidates, key=lambda c: c[0])


def pause(plan, node, tr: TaskRun, value: str | None) -> str:
    if tr.state == State.PAUSED:
        return RUNNING
    if StateChange.objects.filter(taskrun_id=tr.pk, to_state=State.PAUSED).exists():
        # Its pause has ended: the child tasks run, and decide its state.
        return plan.resolve_list(node.children.get("tasks", []), tr, value)
    props = render_props(node, task_context(plan, tr))
    after, behavior = pause_plan(props)
    wake = timezone.now() + after if after is not None else None
    how = (
        f"; {behavior.lower()} after {after.total_seconds():g}s"
        if after is not None
        else "; waiting for a resume"
    )
    machine.transition_taskrun(
        tr,
        State.PAUSED,
        reason=f"paused{how}",
        fields={"scheduled_at": wake},
        actor=EXECUTOR,
    )
    plan.pauses.append((tr, wake))
    return RUNNING


def enter_pause(plan) -> None:
    """After a pass that reached a Pause: the execution waits as PAUSED."""
    execution = plan.execution
    names = ", ".join(sorted({tr.task_id for tr, _ in plan.pauses}))
    machine.transition(
        execution, State.PAUSED, reason=f"paused by task {names}", actor=EXECUTOR
    )
    wakes = [wake for _, wake in plan.pauses if wake is not None]
    if wakes:
        countdown = max((min(wakes) - timezone.now()).total_seconds(), 0.0)
        dispatch.get().advance(execution.pk, countdown=countdown or 0.001)


def wake_due(execution: Execution) -> bool:
    """End the pauses whose time has come (under the execution's lock).
    Returns True when the execution is RUNNING again."""
    now = timezone.now()
    paused = list(TaskRun.objects.filter(execution=execution, state=State.PAUSED))
    due = [
        tr for tr in paused if tr.scheduled_at is not None and tr.scheduled_at <= now
    ]
    if not paused:
        # Nothing is paused (a resume raced with this wake-up, or a crash
        # between the two updates): the execution goes on.
        machine.transition(execution, State.RUNNING, reason="resumed", actor=EXECUTOR)
        return True
    if not due:
        future = [tr.scheduled_at for tr in paused if tr.scheduled_at is not None]
        if future:  # woken early: sleep again until the first one is due
            dispatch.get().advance(
                execution.pk, countdown=max((min(future) - now).total_seconds(), 0.001)
            )
        return False
    spec = execution.spec
    reasons = []
    for tr in due:
        node = spec.task(tr.task_id)
        after, behavior = (None, "FAIL")
        if node is not None:
            try:
                props = render_props(node, expression_context(execution, tr))
                after, behavior = pause_plan(props)
            except Exception as exc:  # noqa: BLE001 — a broken property fails the pause
                behavior = "FAIL"
                log.warning(
                    "pause %s of execution %s: %s", tr.task_id, execution.pk, exc
                )
        waited = f"{after.total_seconds():g}s" if after is not None else "its time"
        if behavior == "CANCEL":
            stop.stop(
                execution.pk,
                final=State.CANCELLED,
                actor=EXECUTOR,
                reason=f"pause '{tr.task_id}' ended after {waited} (behavior CANCEL)",
            )
            execution.refresh_from_db()
            return False
        if behavior == "RESUME":
            reason = f"resumed after {waited}"
            machine.transition_taskrun(
                tr, after_pause(node), reason=reason, actor=EXECUTOR
            )
        else:
            reason = f"not resumed within {waited}"
            machine.transition_taskrun(
                tr,
                State.WARNING if behavior == "WARN" else State.FAILED,
                reason=reason,
                fields={"error": reason},
                actor=EXECUTOR,
            )
        reasons.append(f"{tr.task_id} {reason}")
    if len(due) < len(paused):
        return False
    machine.transition(
        execution, State.RUNNING, reason="; ".join(reasons), actor=EXECUTOR
    )
    return True


FLOWABLES = {PAUSE: pause}
