"""Start: create an execution of a flow and set it going."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from executions import dispatch, storage
from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError, FlowNotFound
from executions.models import Execution
from executions.signals import execution_created
from flows.models import Flow, FlowRevision
from flows.spec import FlowSpec
from flows.spec.inputs import InputError, resolve_inputs
from orchestra.lib.labels import CORRELATION_ID


def get_flow(namespace: str, flow_id: str) -> Flow:
    flow = Flow.objects.filter(
        namespace=namespace, flow_id=flow_id, deleted=False
    ).first()
    if flow is None:
        known = list(
            Flow.objects.filter(namespace=namespace, deleted=False).values_list(
                "flow_id", flat=True
            )
        )
        hint = (
            f" Flows in {namespace}: {', '.join(known)}"
            if known
            else (f" No flows in namespace '{namespace}'.")
        )
        raise FlowNotFound(f"flow {namespace}.{flow_id} does not exist.{hint}")
    return flow


@transaction.atomic
def create_execution(
    revision: FlowRevision | None,
    *,
    actor: Actor,
    inputs: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    trigger: dict[str, Any] | None = None,
    spec: FlowSpec | None = None,
    source: str = "",
    parent: Execution | None = None,
    parent_taskrun_id: int | None = None,
    start: bool = True,
    scheduled_at: datetime | None = None,
) -> Execution:
    """Validate inputs and create an execution (CREATED), then start it —
    at ``scheduled_at`` when that is in the future.

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
    # A person starting it (web, API) may only hand it stored files they can see.
    problems = storage.check_given_files(
        spec.namespace, values, user=actor.user, parent=parent, trigger=trigger
    )
    if problems:
        raise InputError(problems)
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
        scheduled_at=scheduled_at,
    )
    how = trigger.get("type") or actor.cause
    reason = f"created by {how}"
    if scheduled_at is not None:
        reason += f", scheduled for {scheduled_at.isoformat()}"
    if CORRELATION_ID not in all_labels:
        # Kestra's Execution.newExecution: every execution carries a
        # correlation id, its own unless a parent (subflow) handed one down.
        all_labels[CORRELATION_ID] = str(execution.pk)
        Execution.objects.filter(pk=execution.pk).update(labels=all_labels)
        execution.labels = all_labels
    machine.record_created(execution, actor=actor, reason=reason)
    execution_created.send(sender=Execution, execution=execution, spec=spec)
    if start:
        dispatch.get().advance(execution.pk, countdown=_until(scheduled_at))
    return execution


def _until(when: datetime | None) -> float | None:
    """Seconds from now to ``when`` (None when it is not in the future)."""
    if when is None:
        return None
    seconds = (when - timezone.now()).total_seconds()
    return seconds if seconds > 0 else None


def execute_flow(
    namespace: str, flow_id: str, *, actor: Actor, **kwargs: Any
) -> Execution:
    flow = get_flow(namespace, flow_id)
    return create_execution(flow.latest, actor=actor, **kwargs)
