"""Stop: the one path by which executions are killed, cancelled or failed
from outside their own run.

- ``kill`` is the verb people use (web, API, CLI); ``stop`` stops one
  execution with any final state (SLA breach actions use CANCELLED/FAILED);
- ``stop_many`` stops many at once, set-based (stuck cleanup, bulk kill);
- ``settle`` ends an execution that is already KILLING: the executor calls it
  once no task is running, the liveness sweep with ``force`` once the kill
  grace has passed, the stuck cleanup with ``force`` for a stop nobody
  confirmed.

How a stop ends the work: waiting task runs end at once and their queued
Celery messages are revoked (deterministic ids); a task run RUNNING on a
worker that is alive is left to that worker, which sees the execution
KILLING and stops (or ``settle(force=True)`` ends it after the grace); a
task run on a dead or vanished worker ends at once. Active child executions
go with their parent. Whatever the route, the same rows are written: task
runs to KILLED (CANCELLED for a cancel), the execution to KILLING with its
``stop_state``, or straight to its final state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from executions import dispatch
from executions.lifecycle import machine, rules
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError, locked
from executions.models import TERMINAL, Execution, State, TaskRun, WorkerState

UNFINISHED_TASKRUNS = (State.CREATED, State.RUNNING, State.PAUSED)
STOP_STATES = frozenset({State.KILLED, State.CANCELLED, State.FAILED})


@dataclass
class Stopped:
    """What ``stop_many`` did: ids that ended now, ids left KILLING for their
    worker, and the descendants stopped with them."""

    ended: list[int] = field(default_factory=list)
    stopping: list[int] = field(default_factory=list)
    descendants: list[int] = field(default_factory=list)


def taskrun_final(final: str) -> str:
    """The state a stop gives unfinished task runs: a cancel cancels them,
    a kill or an SLA failure kills them (they did not fail on their own)."""
    return State.CANCELLED if final == State.CANCELLED else State.KILLED


def kill(execution_id: int, *, actor: Actor, reason: str = "") -> Execution:
    """The Kill button, ``POST /api/executions/<id>/kill`` and
    ``orchestra executions kill``."""
    with transaction.atomic():
        execution = locked(execution_id)
        rules.check("kill", execution, actor)
        return _stop_locked(execution, actor, State.KILLED, reason or "killed", None)


@transaction.atomic
def stop(
    execution_id: int,
    *,
    actor: Actor,
    final: str = State.KILLED,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> Execution:
    """Stop one execution (and its active children). An execution already
    KILLING is left to finish its stop; an ended one is an ActionError."""
    execution = locked(execution_id)
    if execution.state in TERMINAL:
        raise ActionError(f"execution {execution_id} already ended ({execution.state})")
    return _stop_locked(execution, actor, final, reason, details)


def _stop_locked(
    execution: Execution,
    actor: Actor,
    final: str,
    reason: str,
    details: dict[str, Any] | None,
) -> Execution:
    if execution.state != State.KILLING:
        stop_many(
            [(execution.pk, execution.state)],
            actor=actor,
            final=final,
            reasons={execution.pk: reason},
            details={execution.pk: details or {}},
        )
        execution.refresh_from_db()
    return execution


def stop_many(
    rows: list[tuple[int, str]],
    *,
    actor: Actor,
    final: str,
    reasons: dict[int, str],
    details: dict[int, dict[str, Any]] | None = None,
) -> Stopped:
    """Stop executions given as (id, state), none KILLING or ended; the
    caller holds their row locks. A few statements per batch, not per row."""
    if final not in STOP_STATES:
        raise ValueError(f"a stop ends in one of {sorted(STOP_STATES)}, not {final}")
    details = dict(details or {})
    reasons = dict(reasons)
    rows = list(rows)
    descendants = _lock_descendants([pk for pk, _ in rows])
    for pk, state, parent in descendants:
        rows.append((pk, state))
        reasons[pk] = f"parent execution {parent} stopped"
        details[pk] = {**details.get(parent, {}), "parent": parent}
    ids = [pk for pk, _ in rows]
    trs = list(
        TaskRun.objects.filter(execution_id__in=ids, state__in=UNFINISHED_TASKRUNS)
        .values_list("pk", "execution_id", "state", "flowable", "worker__state")
        .order_by("pk")
    )
    # A task running on a live worker is that worker's to stop.
    held = {
        ex
        for _, ex, state, flowable, w_state in trs
        if state == State.RUNNING and not flowable and w_state == WorkerState.ALIVE
    }
    now = [
        (pk, ex, state)
        for pk, ex, state, flowable, w_state in trs
        # Containers of an execution still stopping end when it settles.
        if not (ex in held and state == State.RUNNING)
    ]
    machine.transition_taskruns_many(
        now, taskrun_final(final), actor=actor, reason="execution stopped"
    )
    dispatch.get().revoke(
        [dispatch.message_id(pk) for pk, _, _, flowable, _ in trs if not flowable]
    )
    # The reason stays as given (a person's words); the history row's
    # details say what the stop waits for.
    grace = settings.ORCHESTRA_KILL_GRACE_SECONDS
    for pk in held:
        details[pk] = {
            **details.get(pk, {}),
            "waiting_for_worker": True,
            "forced_after_seconds": grace,
        }
    fields = {"stop_state": final}
    ending = [(pk, state) for pk, state in rows if pk not in held]
    stopping = [(pk, state) for pk, state in rows if pk in held]
    machine.transition_many(
        ending, final, actor=actor, reasons=reasons, details=details, fields=fields
    )
    machine.transition_many(
        stopping,
        State.KILLING,
        actor=actor,
        reasons=reasons,
        details=details,
        fields=fields,
    )
    return Stopped(
        ended=[pk for pk, _ in ending],
        stopping=[pk for pk, _ in stopping],
        descendants=[pk for pk, _, _ in descendants],
    )


def _lock_descendants(ids: list[int]) -> list[tuple[int, str, int]]:
    """Active, not yet stopping descendants of ``ids`` as (id, state, parent
    id), row-locked in id order (as every stop locks), so two stops never
    deadlock."""
    seen = set(ids)
    found: dict[int, int] = {}
    frontier = ids
    while frontier:
        nxt = list(
            Execution.objects.filter(parent_id__in=frontier)
            .exclude(state__in=TERMINAL)
            .exclude(pk__in=seen)
            .values_list("pk", "parent_id")
        )
        for pk, parent in nxt:
            seen.add(pk)
            found[pk] = parent
        frontier = [pk for pk, _ in nxt]
    if not found:
        return []
    # The roots of the stop: a grandchild names the execution the stop began at.
    roots = {}
    for pk, parent in found.items():
        root = parent
        while root in found:
            root = found[root]
        roots[pk] = root
    return [
        (pk, state, roots[pk])
        for pk, state in Execution.objects.select_for_update()
        .filter(pk__in=list(found))
        .exclude(state__in=[*TERMINAL, State.KILLING])
        .order_by("pk")
        .values_list("pk", "state")
    ]


def settle(
    execution: Execution, *, actor: Actor, reason: str, force: bool = False
) -> bool:
    """End a KILLING execution (row locked by the caller) in its stop state.

    Without ``force`` only once no task runs any more (the executor's pass);
    with it whatever is still running (grace expired, or a stuck stop).
    Returns True when it ended."""
    if execution.state != State.KILLING:
        return False
    if (
        not force
        and TaskRun.objects.filter(
            execution=execution, state=State.RUNNING, flowable=False
        ).exists()
    ):
        return False
    final = execution.stop_state or State.KILLED
    machine.transition_taskruns_many(
        list(
            TaskRun.objects.filter(
                execution=execution, state__in=UNFINISHED_TASKRUNS
            ).values_list("pk", "execution_id", "state")
        ),
        taskrun_final(final),
        actor=actor,
        reason=reason,
    )
    machine.transition(execution, final, actor=actor, reason=reason)
    return True
