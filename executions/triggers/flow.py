"""Flow triggers: start a flow when other executions end.

When an execution reaches an end state, the listener below (inside that
same transaction) matches it against every Flow trigger and writes one
pending ``TriggerEvent`` per match: the end and the intent to react commit
together, and the unique (trigger, source execution, attempt) constraint
makes a second firing for the same end impossible. After commit the pending
events become executions; ``process_pending`` run by beat picks up any that
a crash left behind.

Loops: the trigger chain travels with each triggered execution
(``trigger.chain``); a flow never starts itself, directly or through other
flows. Such a start is recorded as a skipped event with the reason.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.dispatch import receiver
from django.utils import timezone

from executions.models import (
    TERMINAL,
    Execution,
    LogEntry,
    Trigger,
    TriggerEvent,
    TriggerKind,
)
from executions.signals import execution_state_changed, executions_state_changed
from executions.triggers.fire import (
    TriggerError,
    execution_for_trigger,
    latest_revision,
    trigger_actor,
)
from executions.triggers.registry import trigger_decl
from flows.expressions import SECRETS_KEY, ExpressionError
from flows.models import FlowRevision
from flows.namespaces import can_reach
from flows.secrets import scope as secret_scope
from flows.triggers import flow_condition_failures
from orchestra.lib.secrets import mask

log = logging.getLogger("orchestra.flow_trigger")

MAX_CHAIN = 25


def source_variables(execution: Execution) -> dict[str, Any]:
    """``trigger.*`` of an execution started by another one's end."""
    return {
        "executionId": execution.pk,
        "namespace": execution.namespace,
        "flowId": execution.flow_id,
        "flowRevision": execution.revision,
        "state": execution.state,
        "outputs": execution.outputs or {},
        "labels": execution.labels or {},
    }


def _chain(execution: Execution) -> list[str]:
    return list((execution.trigger or {}).get("chain", []))


@receiver(execution_state_changed, dispatch_uid="orchestra.triggers.flow")
def on_execution_end(
    sender, execution: Execution, old: str, new: str, **kwargs
) -> None:
    record_matches([execution], {execution.pk: old}, new)


@receiver(executions_state_changed, dispatch_uid="orchestra.triggers.flow_many")
def on_executions_end(
    sender, executions: list[Execution], olds: dict[int, str], new: str, **kwargs
) -> None:
    record_matches(executions, olds, new)


def record_matches(executions: list[Execution], olds: dict[int, str], new: str) -> None:
    """Write the pending events of every Flow trigger that the ends of
    ``executions`` satisfy: the triggers and their flows are read once,
    however many executions ended together."""
    if new not in TERMINAL:
        return
    ended = [
        e
        for e in executions
        if olds[e.pk] not in TERMINAL and e.flow_revision_id is not None
    ]
    if not ended:
        return
    listeners = list(
        Trigger.objects.filter(kind=TriggerKind.FLOW, disabled=False).values_list(
            "namespace", "flow_id", "trigger_id"
        )
    )
    if not listeners:
        return
    revisions = {
        (r.flow.namespace, r.flow.flow_id): r
        for r in FlowRevision.objects.select_related("flow")
        .filter(
            flow__deleted=False,
            flow__disabled=False,
            flow__namespace__in={ns for ns, *_ in listeners},
            flow__flow_id__in={f for _, f, *_ in listeners},
        )
        .filter(revision=F("flow__revision"))
    }
    declared = []
    for namespace, flow_id, trigger_id in listeners:
        revision = revisions.get((namespace, flow_id))
        decl = trigger_decl(revision.spec, trigger_id) if revision else None
        if decl is not None:
            declared.append((namespace, flow_id, trigger_id, decl))
    reach: dict[tuple[str, str], bool] = {}
    events = [
        event
        for execution in ended
        for event in _matches(execution, new, _listening(execution, declared, reach))
    ]
    if not events:
        return
    TriggerEvent.objects.bulk_create(events, ignore_conflicts=True)
    sources = sorted(
        {
            e.source_execution_id
            for e in events
            if e.status == TriggerEvent.Status.PENDING
        }
    )
    if sources:
        transaction.on_commit(lambda: process_pending(source_execution_ids=sources))


def _listening(
    execution: Execution,
    declared: list[tuple[str, str, str, dict]],
    reach: dict[tuple[str, str], bool],
) -> list[tuple[str, str, str, dict]]:
    """The triggers whose flow may hear of ``execution``'s end: a flow reaches
    its own namespace subtree and namespaces that allow it, nothing else (its
    outputs and labels would otherwise reach another team)."""
    kept = []
    for item in declared:
        key = (item[0], execution.namespace)
        if key not in reach:
            reach[key] = can_reach(*key)
        if reach[key]:
            kept.append(item)
    return kept


def _matches(
    execution: Execution, new: str, declared: list[tuple[str, str, str, dict]]
) -> list[TriggerEvent]:
    """One event per Flow trigger whose conditions the end of ``execution``
    meets (skipped, with the reason, when it would start a loop)."""
    source = {
        "namespace": execution.namespace,
        "flowId": execution.flow_id,
        "state": new,
        "labels": execution.labels or {},
    }
    context = {"trigger": source_variables(execution)}
    chain = [*_chain(execution), f"{execution.namespace}.{execution.flow_id}"]
    events = []
    for namespace, flow_id, trigger_id, decl in declared:
        context[SECRETS_KEY] = secret_scope(namespace)
        try:
            failures = flow_condition_failures(decl, source, context)
        except ExpressionError as exc:
            failures = [f"condition error: {exc.message}"]
            _note(
                execution,
                f"flow trigger {namespace}.{flow_id}:{trigger_id}: {exc.message}",
            )
        if failures:
            continue
        status, reason = TriggerEvent.Status.PENDING, ""
        target = f"{namespace}.{flow_id}"
        if target in chain or len(chain) > MAX_CHAIN:
            status = TriggerEvent.Status.SKIPPED
            reason = (
                f"not started: {target} would trigger itself "
                f"(chain {' -> '.join([*chain, target])})"
            )
            _note(execution, f"flow trigger {target}:{trigger_id} {reason}")
        events.append(
            TriggerEvent(
                namespace=namespace,
                flow_id=flow_id,
                trigger_id=trigger_id,
                kind=TriggerKind.FLOW,
                source_execution_id=execution.pk,
                source_attempt=execution.attempt,
                status=status,
                reason=reason,
                actor=f"flow:{execution.namespace}.{execution.flow_id}",
            )
        )
    return events


def _note(execution: Execution, message: str) -> None:
    message = mask(message)
    LogEntry.objects.create(execution_id=execution.pk, level="WARN", message=message)
    log.warning("execution %s: %s", execution.pk, message)


def process_pending(
    source_execution_ids: list[int] | None = None,
    older_than: timedelta | None = None,
    limit: int = 500,
) -> int:
    """Turn pending Flow-trigger events into executions; returns how many started."""
    qs = TriggerEvent.objects.filter(
        status=TriggerEvent.Status.PENDING, kind=TriggerKind.FLOW
    )
    if source_execution_ids is not None:
        qs = qs.filter(source_execution_id__in=source_execution_ids)
    if older_than is not None:
        qs = qs.filter(created_at__lte=timezone.now() - older_than)
    started = 0
    for pk in list(qs.order_by("id").values_list("pk", flat=True)[:limit]):
        started += _process_one(pk)
    return started


def _process_one(pk: int) -> int:
    with transaction.atomic():
        event = (
            TriggerEvent.objects.select_for_update(skip_locked=True)
            .filter(pk=pk, status=TriggerEvent.Status.PENDING)
            .first()
        )
        if event is None:
            return 0  # another process took it
        source = Execution.objects.filter(pk=event.source_execution_id).first()
        revision = latest_revision(event.namespace, event.flow_id)
        decl = trigger_decl(revision.spec, event.trigger_id) if revision else None
        reachable = source is not None and can_reach(event.namespace, source.namespace)
        if source is None or decl is None or not reachable:
            event.status = TriggerEvent.Status.SKIPPED
            event.reason = (
                "the source execution was deleted"
                if source is None
                else "the flow or its trigger no longer exists"
                if decl is None
                else f"{source.namespace} no longer allows {event.namespace}"
            )
            event.save(update_fields=["status", "reason"])
            return 0
        try:
            execution = execution_for_trigger(
                revision,
                decl,
                source_variables(source),
                actor=trigger_actor(event.actor),
                extra={
                    "chain": [*_chain(source), f"{source.namespace}.{source.flow_id}"]
                },
            )
        except TriggerError as exc:
            event.status, event.reason = TriggerEvent.Status.FAILED, str(exc)
            event.save(update_fields=["status", "reason"])
            _note(
                source,
                f"flow trigger {event.namespace}.{event.flow_id}:{event.trigger_id} "
                f"did not start: {exc}",
            )
            return 0
        event.status, event.execution = TriggerEvent.Status.FIRED, execution
        event.save(update_fields=["status", "execution"])
        return 1
