"""Everything that creates or changes executions. Web, API, CLI and sweeps
all call these functions; each records who did it and why."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from executions import states
from executions.engine import dispatch
from executions.models import TERMINAL, Cause, Execution, State, TaskRun
from flows.models import Flow, FlowRevision
from flows.spec import FlowSpec
from flows.spec.inputs import resolve_inputs


class ActionError(ValueError):
    """A request that cannot be carried out; the message says why."""


class FlowNotFound(ActionError):
    pass


def get_flow(namespace: str, flow_id: str) -> Flow:
    flow = Flow.objects.filter(namespace=namespace, flow_id=flow_id, deleted=False).first()
    if flow is None:
        known = list(
            Flow.objects.filter(namespace=namespace, deleted=False).values_list("flow_id", flat=True)
        )
        hint = f" Flows in {namespace}: {', '.join(known)}" if known else (
            f" No flows in namespace '{namespace}'."
        )
        raise FlowNotFound(f"flow {namespace}.{flow_id} does not exist.{hint}")
    return flow


@transaction.atomic
def create_execution(
    revision: FlowRevision | None,
    *,
    inputs: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    trigger: dict[str, Any] | None = None,
    cause: str = Cause.API,
    actor: str = "",
    spec: FlowSpec | None = None,
    source: str = "",
    parent: Execution | None = None,
    parent_taskrun_id: int | None = None,
    start: bool = True,
) -> Execution:
    """Validate inputs and create an execution (CREATED), then start it.

    Raises InputError (flows.spec.inputs) listing every bad input; nothing is
    stored then. ``revision`` is None only for ``flows test`` runs, which pass
    their ``spec`` and ``source``.
    """
    if revision is not None:
        spec = revision.spec
    assert spec is not None
    if spec.disabled and revision is not None:
        raise ActionError(f"flow {spec.namespace}.{spec.id} is disabled")
    values = resolve_inputs(spec.inputs, inputs or {})
    all_labels = {**spec.labels, **(labels or {})}
    trigger = trigger or {}
    execution = Execution.objects.create(
        namespace=spec.namespace,
        flow_id=spec.id,
        flow_revision=revision,
        revision=revision.revision if revision else 0,
        source="" if revision else source,
        inputs=values,
        labels=all_labels,
        trigger=trigger,
        trigger_id=str(trigger.get("id", "")),
        parent=parent,
        parent_taskrun_id=parent_taskrun_id,
    )
    how = trigger.get("type") or cause
    states.record_created(execution, cause=cause, actor=actor, reason=f"created by {how}")
    from executions.signals import execution_created

    execution_created.send(sender=Execution, execution=execution, spec=spec)
    if start:
        dispatch.get().advance(execution.pk)
    return execution


def execute_flow(namespace: str, flow_id: str, **kwargs: Any) -> Execution:
    flow = get_flow(namespace, flow_id)
    return create_execution(flow.latest, **kwargs)


@transaction.atomic
def stop_execution(
    execution_id: int, *, final: str = State.KILLED, cause: str, actor: str = "",
    reason: str = "", details: dict[str, Any] | None = None,
) -> Execution:
    """Kill (final=KILLED) or cancel (final=CANCELLED) an execution.

    Nothing new starts; queued task runs are revoked; running ones are told
    to stop and the execution ends once they have (or after the grace period,
    see liveness.force_killing). Child executions are stopped too.
    """
    execution = Execution.objects.select_for_update().get(pk=execution_id)
    if execution.state in TERMINAL:
        raise ActionError(f"execution {execution_id} already ended ({execution.state})")
    if execution.state == State.KILLING:
        return execution
    waiting = list(TaskRun.objects.filter(execution=execution, state=State.CREATED))
    running = TaskRun.objects.filter(
        execution=execution, state=State.RUNNING, flowable=False
    ).exists()
    for tr in waiting:
        states.transition_taskrun(tr, State.KILLED, cause=cause, actor=actor,
                                  reason=reason or "execution stopped")
    dispatch.get().revoke([tr.celery_id for tr in waiting])
    if running:
        states.transition(execution, State.KILLING, cause=cause, actor=actor, reason=reason,
                          details=details, fields={"stop_state": final})
    else:
        for tr in TaskRun.objects.filter(execution=execution, state=State.RUNNING):
            states.transition_taskrun(tr, State.KILLED, cause=cause, actor=actor,
                                      reason="execution stopped")
        states.transition(execution, final, cause=cause, actor=actor, reason=reason,
                          details=details, fields={"stop_state": final})
    for child in Execution.objects.filter(parent=execution).exclude(state__in=TERMINAL):
        if child.state != State.KILLING:
            stop_execution(child.pk, final=final, cause=cause, actor=actor,
                           reason=f"parent execution {execution.pk} stopped")
    return execution


def kill(execution_id: int, *, cause: str, actor: str = "", reason: str = "") -> Execution:
    return stop_execution(execution_id, final=State.KILLED, cause=cause, actor=actor,
                          reason=reason or "killed")


@transaction.atomic
def set_labels(execution_id: int, labels: dict[str, str], *, cause: str, actor: str = "",
               reason: str = "") -> Execution:
    execution = Execution.objects.select_for_update().get(pk=execution_id)
    execution.labels = {**(execution.labels or {}), **labels}
    execution.progress_at = timezone.now()
    execution.save(update_fields=["labels", "progress_at"])
    return execution


@transaction.atomic
def delete_execution(execution_id: int, *, actor: str, reason: str = "") -> int:
    """Delete an ended execution with its task runs, logs and history.

    A running execution must be killed first, so nothing keeps working on a
    row that no longer exists. Returns the id deleted.
    """
    execution = Execution.objects.select_for_update().get(pk=execution_id)
    if execution.state not in TERMINAL:
        raise ActionError(
            f"execution {execution_id} is {execution.state}; kill it before deleting it"
        )
    import logging

    logging.getLogger("orchestra.audit").info(
        "execution %s (%s.%s, %s) deleted by %s: %s", execution.pk, execution.namespace,
        execution.flow_id, execution.state, actor, reason or "no reason given",
    )
    execution.delete()
    return execution_id
