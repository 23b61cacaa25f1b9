"""Resume: continue a PAUSED execution, answering its Pause tasks' ``onResume``."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from executions import dispatch
from executions.lifecycle import machine, rules
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import locked, spec_of
from executions.models import Execution, State, TaskRun
from flows.spec.inputs import InputError, resolve_inputs


def after_pause(node) -> str:
    """The state a Pause task run takes when its pause ends well: RUNNING
    when it has child ``tasks`` to run now (Kestra's Pause), else SUCCESS."""
    if node is not None and node.children.get("tasks"):
        return State.RUNNING
    return State.SUCCESS


def pending_inputs(execution: Execution) -> list[dict[str, Any]]:
    """The ``onResume`` declarations of the execution's paused tasks, one per
    input id: what a Resume form asks for."""
    spec = spec_of(execution)
    seen: dict[str, dict[str, Any]] = {}
    paused = TaskRun.objects.filter(execution=execution, state=State.PAUSED)
    for task_id in paused.order_by("id").values_list("task_id", flat=True):
        node = spec.task(task_id)
        for decl in (getattr(node.props, "onResume", None) or []) if node else []:
            seen.setdefault(decl["id"], decl)
    return list(seen.values())


@transaction.atomic
def resume(
    execution_id: int,
    *,
    actor: Actor,
    inputs: dict[str, Any] | None = None,
    reason: str = "",
) -> Execution:
    """Raises InputError (every bad input, every required one missing —
    BOOLEANs included: an unanswered "approved?" is not a "no") or
    ActionError; nothing changes then. The values become
    ``outputs.<pause task>.onResume``. Every path (web, API, CLI) comes here,
    so this is where a required answer is enforced."""
    execution = locked(execution_id)
    rules.check("resume", execution, actor)
    supplied = dict(inputs or {})
    paused = list(TaskRun.objects.filter(execution=execution, state=State.PAUSED))
    spec = spec_of(execution)
    answers: dict[int, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    declared: set[str] = set()
    for tr in paused:
        node = spec.task(tr.task_id)
        decls = (getattr(node.props, "onResume", None) or []) if node else []
        names = {d["id"] for d in decls}
        declared |= names
        try:
            answers[tr.pk] = resolve_inputs(
                decls,
                {k: v for k, v in supplied.items() if k in names},
                require_booleans=True,
            )
        except InputError as exc:
            errors.update(exc.errors)
    for name in supplied:
        if name not in declared:
            hint = ", ".join(sorted(declared)) or "none"
            errors[name] = (
                f"the paused task does not ask for this input (onResume: {hint})"
            )
    if errors:
        raise InputError(errors)
    why = reason or "resumed"
    for tr in paused:
        fields = {"scheduled_at": None}
        if answers.get(tr.pk):
            fields["outputs"] = {**(tr.outputs or {}), "onResume": answers[tr.pk]}
        ends = after_pause(spec.task(tr.task_id))
        machine.transition_taskrun(tr, ends, actor=actor, reason=why, fields=fields)
    machine.transition(
        execution,
        State.RUNNING,
        actor=actor,
        reason=why,
        details={"inputs": sorted(supplied)} if supplied else None,
    )
    dispatch.get().advance(execution.pk)
    return execution
