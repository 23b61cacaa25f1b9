"""Admission: flow concurrency, ``concurrency: {limit, behavior: QUEUE|CANCEL|FAIL}``.

An execution holds a slot of its flow while it is CREATED, RUNNING, PAUSED,
RETRYING or RESTARTED. A stopping (KILLING) execution has given its slot
back already: a kill or cancel frees the slot at once, and a run stuck in
"killing" never blocks the queue.

Admission and release both lock the flow's ``FlowGate`` row (SELECT ... FOR
UPDATE) and then count the slots in use, so two workers or web processes
creating executions at the same moment are serialized, and a count is never
stale: there is no counter that a lost update could drift. Both run inside
the transaction that creates or ends the execution (listeners of
executions.signals), so "admitted" and "created", or "ended" and "next one
started", commit together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.dispatch import receiver

from executions import dispatch
from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.models import Execution, FlowGate, State
from executions.signals import (
    execution_created,
    execution_state_changed,
    executions_state_changed,
)
from flows.models import Flow

log = logging.getLogger("orchestra.concurrency")

ADMISSION = Actor.system("concurrency")

HOLDING = frozenset(
    {State.CREATED, State.RUNNING, State.PAUSED, State.RETRYING, State.RESTARTED}
)


def lock_gate(namespace: str, flow_id: str) -> FlowGate:
    """The flow's gate row, locked until the end of the transaction."""
    gate, _ = FlowGate.objects.select_for_update().get_or_create(
        namespace=namespace, flow_id=flow_id
    )
    return gate


def slots_in_use(namespace: str, flow_id: str, exclude: int | None = None) -> int:
    qs = Execution.objects.filter(
        namespace=namespace, flow_id=flow_id, state__in=HOLDING
    )
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    return qs.count()


def _limit_of(namespace: str, flow_id: str) -> dict | None:
    flow = Flow.objects.filter(
        namespace=namespace, flow_id=flow_id, deleted=False
    ).first()
    return flow.latest.spec.concurrency if flow else None


@dataclass(frozen=True)
class OverLimit:
    """Where an execution over its flow's limit goes, and why."""

    state: str
    reason: str
    details: dict


def over_limit(execution: Execution, spec) -> OverLimit | None:
    """None when ``execution`` may run now; otherwise the state its flow's
    ``concurrency.behavior`` sends it to. Locks the flow's gate until the end
    of the transaction, so the answer holds until the caller commits."""
    concurrency = spec.concurrency
    if not concurrency or execution.flow_revision_id is None:
        return None
    lock_gate(execution.namespace, execution.flow_id)
    running = slots_in_use(execution.namespace, execution.flow_id, exclude=execution.pk)
    limit = concurrency["limit"]
    if running < limit:
        return None
    behavior = concurrency["behavior"]
    return OverLimit(
        state={"QUEUE": State.QUEUED, "CANCEL": State.CANCELLED, "FAIL": State.FAILED}[
            behavior
        ],
        reason=(
            f"flow concurrency limit {limit} reached ({running} running); "
            f"behavior {behavior}"
        ),
        details={"limit": limit, "running": running, "behavior": behavior},
    )


def hold_back(execution: Execution, over: OverLimit) -> None:
    """Move an execution over the limit to QUEUED, CANCELLED or FAILED."""
    machine.transition(
        execution,
        over.state,
        actor=ADMISSION,
        reason=over.reason,
        details=over.details,
        fields={"error": over.reason} if over.state == State.FAILED else None,
    )


@receiver(execution_created, dispatch_uid="orchestra.concurrency.admit")
def admit(sender, execution: Execution, spec, **kwargs) -> None:
    """Over the limit, a new execution (run, trigger, subflow or replay) is
    QUEUED, CANCELLED or FAILED before anything runs; the state change
    records the limit and the count."""
    over = over_limit(execution, spec)
    if over is not None:
        hold_back(execution, over)


@receiver(execution_state_changed, dispatch_uid="orchestra.concurrency.release")
def on_state_changed(
    sender, execution: Execution, old: str, new: str, **kwargs
) -> None:
    if _frees_slot(old, new):
        release(execution.namespace, execution.flow_id)


@receiver(executions_state_changed, dispatch_uid="orchestra.concurrency.release_many")
def on_states_changed(
    sender, executions: list[Execution], olds: dict[int, str], new: str, **kwargs
) -> None:
    """Bulk moves (cleanup, sweeps): one release per flow, not per execution."""
    flows = {
        (e.namespace, e.flow_id) for e in executions if _frees_slot(olds[e.pk], new)
    }
    if not flows:
        return
    # One read finds the few flows that have anything queued.
    waiting = set(
        Execution.objects.filter(
            state=State.QUEUED,
            namespace__in={ns for ns, _ in flows},
            flow_id__in={f for _, f in flows},
        )
        .values_list("namespace", "flow_id")
        .distinct()
    )
    for namespace, flow_id in sorted(flows & waiting):
        release(namespace, flow_id)


def _frees_slot(old: str, new: str) -> bool:
    return old in HOLDING and new not in HOLDING and new != State.QUEUED


def release(namespace: str, flow_id: str) -> list[int]:
    """Start the oldest queued executions of the flow while slots are free;
    returns their ids. Safe to call any time (beat calls it as a safety net)."""
    with transaction.atomic():
        if not Execution.objects.filter(
            namespace=namespace, flow_id=flow_id, state=State.QUEUED
        ).exists():
            return []
        concurrency = _limit_of(namespace, flow_id)
        lock_gate(namespace, flow_id)
        free = (
            concurrency["limit"] - slots_in_use(namespace, flow_id)
            if concurrency
            else None
        )
        if free is not None and free <= 0:
            return []
        queued = Execution.objects.filter(
            namespace=namespace, flow_id=flow_id, state=State.QUEUED
        ).order_by("created_at", "id")
        # Plain FOR UPDATE (not SKIP LOCKED): creation order is the promise.
        queued = queued.select_for_update(of=("self",))
        if free is not None:
            queued = queued[:free]
        started = []
        for execution in queued:
            reason = (
                "a concurrency slot was freed"
                if concurrency
                else "the flow has no concurrency limit any more"
            )
            machine.transition(
                execution,
                State.CREATED,
                actor=ADMISSION,
                reason=reason,
            )
            dispatch.get().advance(execution.pk)
            started.append(execution.pk)
        return started


def release_all() -> int:
    """Beat's safety net: every flow with queued executions gets its free slots."""
    flows = (
        Execution.objects.filter(state=State.QUEUED)
        .values_list("namespace", "flow_id")
        .distinct()
    )
    return sum(len(release(ns, flow_id)) for ns, flow_id in flows)
