"""The only way an execution or a task run changes state, and the only
writer of ``StateChange`` history rows.

Each change is a conditional UPDATE (``WHERE state = <old>``) that must touch
exactly one row, plus a StateChange row in the same transaction: two
processes can never both move the same row, and the history never misses a
step. Rows born in a state (a new execution, a task run created SKIPPED, a
replay's copies, a labels change) get their history from ``record_history``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from executions.lifecycle.actor import Actor
from executions.models import TERMINAL, Execution, State, StateChange, TaskRun
from executions.signals import execution_state_changed, executions_state_changed
from orchestra.lib.secrets import mask

S = State
_STOP = {S.KILLING, S.KILLED, S.CANCELLED}

# Executions.
ALLOWED: dict[str, set[str]] = {
    S.CREATED: {S.RUNNING, S.QUEUED, S.FAILED} | _STOP,
    S.QUEUED: {S.CREATED, S.RUNNING, S.FAILED} | _STOP,
    S.RUNNING: {S.SUCCESS, S.WARNING, S.FAILED, S.PAUSED, S.RETRYING} | _STOP,
    S.PAUSED: {S.RUNNING, S.FAILED} | _STOP,
    S.RETRYING: {S.RUNNING, S.FAILED} | _STOP,
    # QUEUED: restarted while the flow is at its concurrency limit.
    S.RESTARTED: {S.RUNNING, S.QUEUED, S.FAILED} | _STOP,
    # FAILED: stopped by an SLA breach whose behavior is FAIL.
    S.KILLING: {S.KILLED, S.CANCELLED, S.FAILED},
    S.SUCCESS: {S.RESTARTED},
    S.WARNING: {S.RESTARTED},
    S.FAILED: {S.RESTARTED},
    S.KILLED: {S.RESTARTED},
    S.CANCELLED: {S.RESTARTED},
}

# Task runs.
TASKRUN_ALLOWED: dict[str, set[str]] = {
    S.CREATED: {S.RUNNING, S.SKIPPED, S.KILLED, S.CANCELLED, S.FAILED},
    # CREATED: resubmitted to another worker after its worker was lost.
    S.RUNNING: {
        S.SUCCESS,
        S.WARNING,
        S.FAILED,
        S.KILLED,
        S.CANCELLED,
        S.PAUSED,
        S.CREATED,
    },
    S.PAUSED: {S.RUNNING, S.SUCCESS, S.WARNING, S.FAILED, S.KILLED, S.CANCELLED},
    S.FAILED: {S.RESTARTED},
    S.KILLED: {S.RESTARTED},
    S.CANCELLED: {S.RESTARTED},
    # A restart also re-runs the errors and finally branches, whatever they did.
    S.SUCCESS: {S.RESTARTED},
    S.WARNING: {S.RESTARTED},
    S.SKIPPED: {S.RESTARTED},
    # RESTARTED marks an attempt a restart superseded; a flowable container
    # (Sequential, Parallel, ForEach, ...) goes back to RUNNING in place so its
    # successful children keep their outputs.
    S.RESTARTED: {S.RUNNING},
}


class IllegalTransition(ValueError):
    pass


class StaleState(RuntimeError):
    """The row was no longer in the expected state: someone else moved it."""


def _check(table: dict[str, set[str]], old: str, new: str, what: str) -> None:
    if new not in table.get(old, set()):
        raise IllegalTransition(f"{what} cannot go from {old} to {new}")


@transaction.atomic
def _masked(fields: dict[str, Any] | None) -> dict[str, Any]:
    """Errors are stored and shown: masked like state history reasons."""
    fields = dict(fields or {})
    if isinstance(fields.get("error"), str):
        fields["error"] = mask(fields["error"])
    return fields


def transition(
    execution: Execution,
    to: str,
    *,
    actor: Actor,
    reason: str = "",
    details: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
) -> Execution:
    """Move ``execution`` from its current (in-memory) state to ``to``.

    Raises IllegalTransition for a move the state machine forbids and
    StaleState when the row changed since it was read.
    """
    old = execution.state
    _check(ALLOWED, old, to, f"execution {execution.pk}")
    now = timezone.now()
    values: dict[str, Any] = {"state": to, "progress_at": now, **_masked(fields)}
    if to == S.RUNNING and execution.started_at is None:
        values["started_at"] = now
    if to in TERMINAL:
        values["ended_at"] = now
    elif old in TERMINAL:
        values["ended_at"] = None
    updated = Execution.objects.filter(pk=execution.pk, state=old).update(**values)
    if updated != 1:
        raise StaleState(f"execution {execution.pk} is no longer {old}")
    for key, value in values.items():
        setattr(execution, key, value)
    record_history(
        [Entry(execution.pk, to, None, old, reason, details or {}, now)], actor=actor
    )
    execution_state_changed.send(
        sender=Execution, execution=execution, old=old, new=to, cause=actor.cause
    )
    return execution


# No savepoint: the engine calls this several times per task inside its own
# transaction, and an error here aborts that whole transaction anyway.
@transaction.atomic(savepoint=False)
def transition_taskrun(
    taskrun: TaskRun,
    to: str,
    *,
    actor: Actor,
    reason: str = "",
    fields: dict[str, Any] | None = None,
    only_if: dict[str, Any] | None = None,
    touch_execution: bool = True,
) -> bool:
    """Move a task run; returns False (and changes nothing) when it moved since.

    ``only_if`` adds conditions to the UPDATE (e.g. the claiming worker).
    ``touch_execution=False`` skips bumping the execution's ``progress_at``
    when the caller's transaction has just done so.
    """
    old = taskrun.state
    _check(TASKRUN_ALLOWED, old, to, f"task run {taskrun.pk} ({taskrun.task_id})")
    now = timezone.now()
    values: dict[str, Any] = {"state": to, **_masked(fields)}
    if to == S.RUNNING and taskrun.started_at is None:
        values["started_at"] = now
    if to in TERMINAL:
        values["ended_at"] = now
    conditions = {"pk": taskrun.pk, "state": old, **(only_if or {})}
    updated = TaskRun.objects.filter(**conditions).update(**values)
    if updated != 1:
        return False
    for key, value in values.items():
        setattr(taskrun, key, value)
    record_history(
        [Entry(taskrun.execution_id, to, taskrun.pk, old, reason, {}, now)],
        actor=actor,
    )
    if touch_execution:
        Execution.objects.filter(pk=taskrun.execution_id).update(progress_at=now)
    return True


@transaction.atomic
def transition_many(
    rows: list[tuple[int, str]],
    to: str,
    *,
    actor: Actor,
    reasons: dict[int, str] | None = None,
    details: dict[int, dict[str, Any]] | None = None,
    fields: dict[str, Any] | None = None,
) -> int:
    """Move many executions, given as (id, current state), to ``to`` at once.

    The bulk form of ``transition`` for sweeps and cleanup: one conditional
    UPDATE per old state and one INSERT of all StateChange rows, in one
    transaction. Callers hold the rows' locks; if any row moved meanwhile,
    StaleState rolls the whole batch back.
    """
    if not rows:
        return 0
    reasons = reasons or {}
    details = details or {}
    by_old: dict[str, list[int]] = {}
    for pk, old in rows:
        _check(ALLOWED, old, to, f"execution {pk}")
        by_old.setdefault(old, []).append(pk)
    now = timezone.now()
    values: dict[str, Any] = {"state": to, "progress_at": now, **(fields or {})}
    if to in TERMINAL:
        values["ended_at"] = now
    for old, pks in by_old.items():
        updated = Execution.objects.filter(pk__in=pks, state=old).update(**values)
        if updated != len(pks):
            raise StaleState(
                f"{len(pks) - updated} of {len(pks)} executions are no longer {old}"
            )
    record_history(
        [
            Entry(pk, to, None, old, reasons.get(pk, ""), details.get(pk, {}), now)
            for pk, old in rows
        ],
        actor=actor,
    )
    if executions_state_changed.has_listeners(Execution):
        olds = dict(rows)
        executions_state_changed.send(
            sender=Execution,
            executions=list(Execution.objects.filter(pk__in=list(olds))),
            olds=olds,
            new=to,
            cause=actor.cause,
        )
    return len(rows)


@transaction.atomic
def transition_taskruns_many(
    rows: list[tuple[int, int, str]],
    to: str,
    *,
    actor: Actor,
    reason: str = "",
) -> int:
    """Move many task runs, given as (id, execution id, current state), to
    ``to``: one conditional UPDATE per old state, StateChange rows in bulk.
    Rows that moved meanwhile are left alone and get no history row."""
    if not rows:
        return 0
    by_old: dict[str, list[int]] = {}
    for pk, _execution_id, old in rows:
        _check(TASKRUN_ALLOWED, old, to, f"task run {pk}")
        by_old.setdefault(old, []).append(pk)
    now = timezone.now()
    values: dict[str, Any] = {"state": to}
    if to in TERMINAL:
        values["ended_at"] = now
    moved: set[int] = set()
    for old, pks in by_old.items():
        # Lock what is still in ``old`` (a worker's claim is a conditional
        # UPDATE too: it waits, then finds the row moved), then move it: two
        # statements per state, not per row, and history only for real moves.
        ids = list(
            TaskRun.objects.select_for_update()
            .filter(pk__in=pks, state=old)
            .values_list("pk", flat=True)
        )
        TaskRun.objects.filter(pk__in=ids).update(**values)
        moved.update(ids)
    record_history(
        [
            Entry(execution_id, to, pk, old, reason, {}, now)
            for pk, execution_id, old in rows
            if pk in moved
        ],
        actor=actor,
    )
    return len(moved)


@dataclass
class Entry:
    """A history row for a row born in a state (``from_state`` empty), or for
    an action that changes no state (``from_state`` equal to ``state``)."""

    execution_id: int
    state: str
    taskrun_id: int | None = None
    from_state: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None


def record_history(entries: Iterable[Entry], *, actor: Actor) -> None:
    """Write the history rows of ``entries`` (in one INSERT)."""
    now = timezone.now()
    StateChange.objects.bulk_create(
        [
            StateChange(
                execution_id=e.execution_id,
                taskrun_id=e.taskrun_id,
                from_state=e.from_state,
                to_state=e.state,
                at=e.at or now,
                cause=actor.cause,
                actor=actor.name,
                reason=mask(e.reason),
                details=mask(e.details or {}),
            )
            for e in entries
        ],
        batch_size=2000,
    )


def record_created(
    execution: Execution,
    *,
    actor: Actor,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """History row for a new execution (from nothing to its first state)."""
    record_history(
        [
            Entry(
                execution.pk,
                execution.state,
                reason=reason,
                details=details or {},
                at=execution.created_at,
            )
        ],
        actor=actor,
    )


__all__ = [
    "ALLOWED",
    "TASKRUN_ALLOWED",
    "Entry",
    "IllegalTransition",
    "StaleState",
    "record_created",
    "record_history",
    "transition",
    "transition_many",
    "transition_taskrun",
    "transition_taskruns_many",
]
