"""Deadlines are stored, not recomputed (DESIGN §4).

Receivers of the engine's execution signals, run inside the engine's
transaction:

- created: the thresholds that apply are written as open deadlines;
- first start (CREATED/QUEUED → RUNNING): ``due_at = started_at + threshold``,
  so the sweep finds a running execution past its SLA with a range query;
- end: deadlines met in time are closed; late ones stay open for the sweep,
  which is the only place that records misses; assertions become due;
- restart (an ended execution running again): the new attempt gets deadlines
  of its own, measured from the restart (``restart_deadlines``).

Each receiver runs in a savepoint and never raises: a fault in SLA
bookkeeping is logged and must not roll back the engine's state change.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from executions.models import TERMINAL, Execution, State
from executions.signals import (
    execution_advanced,
    execution_created,
    execution_state_changed,
    executions_state_changed,
    in_process_tick,
)
from sla.models import Deadline, DeadlineState, Kind
from sla.rules import applying_rule, thresholds_for
from sla.sweep import check_running_assertions, tick_for

log = logging.getLogger("orchestra.sla")

FIRST_START = {State.CREATED, State.QUEUED}


def create_deadlines(
    execution: Execution, spec: Any, started: datetime | None = None
) -> list[Deadline]:
    """The thresholds that apply now, as open deadlines of the execution's
    current attempt, due ``threshold`` after ``started`` (default: when the
    execution started; unknown until it does)."""
    started = started or execution.started_at
    rule = applying_rule(execution.namespace, execution.flow_id, execution.labels)
    thresholds = thresholds_for(rule, execution.inputs, getattr(spec, "sla", []))
    if not thresholds:
        return []
    rows = [
        Deadline(
            execution_id=execution.pk,
            rule=rule,
            key=t.key,
            kind=t.kind,
            level=t.level,
            threshold=t.threshold,
            assertion=t.assertion,
            behavior=t.behavior,
            labels=t.labels,
            due_at=(started + t.threshold) if started and t.threshold else None,
            attempt=execution.attempt,
        )
        for t in thresholds
    ]
    return Deadline.objects.bulk_create(rows, ignore_conflicts=True)


def start_deadlines(execution: Execution) -> None:
    for deadline in Deadline.objects.filter(
        execution_id=execution.pk,
        state=DeadlineState.OPEN,
        kind=Kind.DURATION,
        due_at__isnull=True,
    ):
        Deadline.objects.filter(pk=deadline.pk).update(
            due_at=execution.started_at + deadline.threshold
        )


def close_deadlines(execution: Execution) -> None:
    close_deadlines_many([execution])


def close_deadlines_many(executions: list[Execution]) -> None:
    """Close the open deadlines of ended executions: one read and at most
    three UPDATEs, however many executions ended together."""
    ended = {e.pk: e.ended_at for e in executions if e.ended_at}
    rows = list(
        Deadline.objects.filter(
            execution_id__in=list(ended), state=DeadlineState.OPEN
        ).values_list("pk", "execution_id", "kind", "due_at")
    )
    if not rows:
        return  # the usual case: one indexed read on the engine's path
    void = [pk for pk, _, kind, due in rows if kind == Kind.DURATION and due is None]
    met = [
        pk
        for pk, ex, kind, due in rows
        if kind == Kind.DURATION and due and due >= ended[ex]
    ]
    # Assertions are evaluated by the sweep, against the final execution.
    for ids, change in (
        (void, {"state": DeadlineState.VOID}),
        (met, {"state": DeadlineState.MET}),
    ):
        if ids:
            Deadline.objects.filter(pk__in=ids, state=DeadlineState.OPEN).update(
                **change
            )
    asserts: dict[Any, list[int]] = {}
    for pk, ex, kind, _ in rows:
        if kind == Kind.ASSERTION:
            asserts.setdefault(ended[ex], []).append(pk)
    for due_at, ids in asserts.items():
        Deadline.objects.filter(pk__in=ids, state=DeadlineState.OPEN).update(
            due_at=due_at
        )
    # Late ones stay open: the sweep records their miss (it is the only place that does).


def _guarded(what: str, func, *args) -> None:
    try:
        with transaction.atomic():
            func(*args)
    except Exception:  # noqa: BLE001 — see the module docstring
        log.exception("SLA: could not %s", what)


@receiver(execution_created, dispatch_uid="sla.created")
def _on_created(sender, execution: Execution, spec: Any = None, **kwargs) -> None:
    _guarded(
        f"store deadlines of execution {execution.pk}",
        create_deadlines,
        execution,
        spec,
    )


@receiver(execution_state_changed, dispatch_uid="sla.state_changed")
def _on_state_changed(
    sender, execution: Execution, old: str, new: str, **kwargs
) -> None:
    if new == State.RUNNING and old in FIRST_START and execution.started_at:
        _guarded(
            f"start deadlines of execution {execution.pk}", start_deadlines, execution
        )
    elif new in TERMINAL and execution.ended_at:
        _guarded(
            f"close deadlines of execution {execution.pk}", close_deadlines, execution
        )
    elif old in TERMINAL:  # restarted: the one way back from an end
        _guarded(
            f"store deadlines of restarted execution {execution.pk}",
            restart_deadlines,
            execution,
        )


@receiver(executions_state_changed, dispatch_uid="sla.states_changed")
def _on_states_changed(
    sender, executions: list[Execution], olds: dict[int, str], new: str, **kwargs
) -> None:
    if new in TERMINAL:
        _guarded(
            f"close deadlines of {len(executions)} executions",
            close_deadlines_many,
            executions,
        )
    else:
        for execution in executions:
            _on_state_changed(sender, execution, olds[execution.pk], new)


def restart_deadlines(execution: Execution) -> list[Deadline]:
    """A restarted execution is judged again, from the restart, by the rules
    in force now: users restart a failed run to get it done in time, and an
    SLA measured from the first start would breach at once. The earlier
    attempt's deadlines are left as they were: a late one still open gives
    that attempt's miss (once), and misses are unique per attempt."""
    return create_deadlines(execution, execution.spec, started=execution.progress_at)


@receiver(execution_advanced, dispatch_uid="sla.advanced")
def _on_advanced(sender, execution: Execution, spec: Any = None, **kwargs) -> None:
    if spec is None or not getattr(spec, "sla", None):
        return  # the usual case: nothing to check, no query
    _guarded(
        f"check the assertions of execution {execution.pk}",
        check_running_assertions,
        execution,
        spec,
    )


@receiver(in_process_tick, dispatch_uid="sla.in_process_tick")
def _on_in_process_tick(sender, execution_ids: list[int], **kwargs) -> None:
    _guarded(f"fire the deadlines of {execution_ids}", tick_for, execution_ids)
