"""The liveness sweep: recovery of work lost with a dead worker.

A worker (its identity and heartbeats are ``lease.py``) is declared dead only
after ``ORCHESTRA_MISSED_HEARTBEATS`` beats in a row are missing, so one slow
beat never kills healthy work. A task run is lost when its worker is dead,
stopped or gone, or when its live worker's beats stopped naming it. Lost task
runs are resubmitted to another worker (``ORCHESTRA_WORKER_LOST_RESUBMITS``
times), then failed with "worker lost" so their retry policy and the flow's
``errors`` branch apply.

The sweep is also the net for other lost messages: task runs and executions
nobody advanced, pauses past their wake-up time and executions past their
``scheduleDate`` (whose countdown ``advance`` never arrived).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from executions import dispatch
from executions.engine.executor import advance_and_dispatch
from executions.engine.retry import schedule_retry
from executions.heartbeats import liveness_timeout, unreported
from executions.lifecycle import machine, stop
from executions.lifecycle.actor import Actor
from executions.models import (
    Cause,
    Execution,
    ServiceBeat,
    State,
    StateChange,
    TaskRun,
    Worker,
    WorkerState,
)

log = logging.getLogger("orchestra.liveness")

LIVENESS = Actor.system("liveness", Cause.SWEEP)


# --- the sweep -----------------------------------------------------------
def _database_started_at():
    """When the database server started (PostgreSQL), or None."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_postmaster_start_time()")
        return cursor.fetchone()[0]


def watched() -> bool:
    """Record this round (for /api/health); False right after the database
    restarted (a restart, a failover): every worker was silent then because
    it could not write its beats, not because it died, so none is declared
    dead until they have had a whole liveness timeout to beat again."""
    now = timezone.now()
    ServiceBeat.objects.update_or_create(name="scheduler", defaults={"at": now})
    started = _database_started_at()
    if started is not None and now - started < liveness_timeout():
        log.warning(
            "the database started %ss ago; no worker is declared dead before "
            "they had %ss to beat again",
            round((now - started).total_seconds(), 1),
            liveness_timeout().total_seconds(),
        )
        return False
    return True


def declare_dead_workers() -> list[Worker]:
    """Mark workers whose heartbeats stopped; return the ones just declared."""
    cutoff = timezone.now() - liveness_timeout()
    dead = []
    for worker in Worker.objects.filter(
        state=WorkerState.ALIVE, last_heartbeat_at__lt=cutoff
    ):
        # Conditional update: with several sweeps at once, one declares.
        if Worker.objects.filter(
            pk=worker.pk, state=WorkerState.ALIVE, last_heartbeat_at__lt=cutoff
        ).update(state=WorkerState.DEAD, dead_at=timezone.now()):
            dead.append(worker)
            log.warning(
                "worker %s declared dead (last heartbeat %s)",
                worker.name,
                worker.last_heartbeat_at,
            )
    return dead


def _orphans(limit: int) -> list[tuple[TaskRun, str]]:
    """Task runs no live process will finish, each with why."""
    # Held by a worker declared dead, by one that stopped (a cold shutdown
    # ends its tasks with the process; their redelivered messages find the
    # task run no longer CREATED and drop it) and stays silent, or by a
    # worker row that no longer exists.
    silent = timezone.now() - liveness_timeout()
    found: list[tuple[TaskRun, str]] = []
    for tr in TaskRun.objects.filter(
        Q(worker__state=WorkerState.DEAD)
        | Q(worker__state=WorkerState.STOPPED, worker__last_heartbeat_at__lt=silent)
        | Q(worker__isnull=True),
        state=State.RUNNING,
        flowable=False,
    ).select_related("worker")[:limit]:
        if tr.worker is None:
            reason = "worker lost: its worker record no longer exists"
        elif tr.worker.state == WorkerState.STOPPED:
            reason = f"worker lost: {tr.worker.name} shut down while running it"
        else:
            reason = f"worker lost: {tr.worker.name} stopped sending heartbeats"
        found.append((tr, reason))
    # Held by a live worker that no longer reports it (RUNNING task runs are
    # as many as the workers' slots: few rows, on the partial index).
    for tr in TaskRun.objects.filter(
        state=State.RUNNING,
        flowable=False,
        worker__state=WorkerState.ALIVE,
        started_at__lt=timezone.now() - liveness_timeout(),
    ).select_related("worker")[: max(limit - len(found), 0)]:
        w = tr.worker
        if unreported(
            tr.pk,
            tr.started_at.timestamp(),
            w.running,
            w.last_heartbeat_at.timestamp(),
        ):
            found.append(
                (
                    tr,
                    f"worker lost: {w.name} is alive but no longer runs it "
                    "(its outcome was never recorded)",
                )
            )
    return found


def resubmit_allowed(tr: TaskRun, node) -> bool:
    if tr.resubmits >= settings.ORCHESTRA_WORKER_LOST_RESUBMITS:
        return False
    return (
        node is None or getattr(node.props, "resubmitOnWorkerLoss", True) is not False
    )


def recover_orphans(limit: int = 500) -> int:
    """Resubmit, re-queue or fail the task runs no live worker will finish.
    Returns how many.

    A worker's loss is not the task's failure: the task run goes back to
    CREATED for another worker, up to ``ORCHESTRA_WORKER_LOST_RESUBMITS``
    times (a resubmission, not an attempt of the task's own retry policy),
    unless the task opts out with ``resubmitOnWorkerLoss: false``. After
    that it fails with "worker lost", so its retry policy and the flow's
    ``errors`` handlers apply.
    """
    recovered = 0
    for tr, reason in _orphans(limit):
        resubmitted = False
        with transaction.atomic():
            execution = Execution.objects.select_for_update().get(pk=tr.execution_id)
            node = execution.spec.task(tr.task_id)
            active = execution.state in (State.RUNNING, State.PAUSED)
            if active and resubmit_allowed(tr, node):
                n = tr.resubmits + 1
                most = settings.ORCHESTRA_WORKER_LOST_RESUBMITS
                if not machine.transition_taskrun(
                    tr,
                    State.CREATED,
                    reason=f"resubmitted ({n} of {most}): {reason}",
                    fields={"worker_id": None, "started_at": None, "resubmits": n},
                    only_if={"worker_id": tr.worker_id},
                    actor=LIVENESS,
                ):
                    continue
                dispatch.get().run_taskrun(tr.pk)
                resubmitted = True
            else:
                if tr.resubmits:
                    reason = f"{reason} (after {tr.resubmits} resubmissions)"
                if not machine.transition_taskrun(
                    tr,
                    State.FAILED,
                    reason=reason,
                    fields={"error": reason},
                    only_if={"worker_id": tr.worker_id},
                    actor=LIVENESS,
                ):
                    continue
                nxt = None
                if node is not None and active:
                    nxt = schedule_retry(tr, node, reason)
                if nxt is not None:
                    dispatch.get().run_taskrun(nxt.pk, eta=nxt.scheduled_at)
        recovered += 1
        if not resubmitted:
            advance_and_dispatch(tr.execution_id)
    return recovered


def redispatch_lost(age: timedelta | None = None, limit: int = 500) -> int:
    """Send again what a lost message left waiting (a broker restart without
    persistence, a crash between commit and send). Claims are conditional,
    so a duplicate is harmless."""
    age = age or liveness_timeout() * 2
    now = timezone.now()
    cutoff = now - age
    count = 0
    # Sent again with a backoff: after ``age``, then when it has waited twice
    # as long as at its last resend, and so on. A message that is only slow
    # (a backlog) must not be joined by a copy every round, or the copies
    # become the backlog.
    resend = []
    for pk, created_at, scheduled_at, last in (
        TaskRun.objects.filter(state=State.CREATED, created_at__lt=cutoff)
        .exclude(scheduled_at__gt=cutoff)
        .order_by("created_at")
        .values_list("pk", "created_at", "scheduled_at", "redispatched_at")[: limit * 4]
    ):
        since = max(created_at, scheduled_at) if scheduled_at else created_at
        if last is None or now - last >= max(age, (now - since) / 2):
            resend.append(pk)
        if len(resend) >= limit:
            break
    if resend:
        with transaction.atomic():
            TaskRun.objects.filter(pk__in=resend, state=State.CREATED).update(
                redispatched_at=now
            )
            for pk in resend:
                dispatch.get().run_taskrun(pk)
        count += len(resend)
    # Executions nobody advanced: created but never started, or running with
    # nothing in flight (the advance after the last task was lost).
    in_flight = TaskRun.objects.filter(
        execution=OuterRef("pk"),
        flowable=False,
        state__in=[State.CREATED, State.RUNNING],
    )
    # A parent waiting on a live child (Subflow, ForEachItem) is not idle:
    # the child's end advances it.
    live_child = Execution.objects.filter(parent=OuterRef("pk")).exclude(
        state__in=[
            State.SUCCESS,
            State.WARNING,
            State.FAILED,
            State.KILLED,
            State.CANCELLED,
        ]
    )
    idle = (
        Execution.objects.filter(
            state__in=[State.CREATED, State.RUNNING, State.RESTARTED, State.KILLING],
            progress_at__lt=cutoff,
        )
        .exclude(Exists(in_flight))
        .exclude(Exists(live_child))
        .values_list("pk", flat=True)
    )
    for pk in idle[:limit]:
        advance_and_dispatch(pk)
        count += 1
    return count


def force_killing(limit: int = 500) -> int:
    """KILLING past the grace period ends even if its worker never answers."""
    grace = timedelta(seconds=settings.ORCHESTRA_KILL_GRACE_SECONDS)
    cutoff = timezone.now() - grace
    count = 0
    # Counted from the kill, not from the last sign of life: a task that keeps
    # logging but ignores the stop must not hold KILLING forever.
    killing_since = (
        StateChange.objects.filter(
            execution=OuterRef("pk"), taskrun=None, to_state=State.KILLING
        )
        .order_by("-id")
        .values("at")[:1]
    )
    for execution_id in (
        Execution.objects.filter(state=State.KILLING)
        .annotate(killing_since=Coalesce(Subquery(killing_since), "progress_at"))
        .filter(killing_since__lt=cutoff)
        .values_list("pk", flat=True)[:limit]
    ):
        with transaction.atomic():
            execution = Execution.objects.select_for_update().get(pk=execution_id)
            if not stop.settle(
                execution,
                actor=LIVENESS,
                reason=f"stop forced after a grace of {grace.total_seconds():g}s: "
                "the worker did not confirm it",
                force=True,
            ):
                continue
        count += 1
    return count


def wake_paused(limit: int = 500) -> int:
    """Sweep: advance PAUSED executions whose pause is overdue (its countdown
    message was lost, e.g. a broker restart without persistence)."""
    cutoff = timezone.now() - timedelta(seconds=1)
    ids = list(
        TaskRun.objects.filter(
            state=State.PAUSED, scheduled_at__lt=cutoff, execution__state=State.PAUSED
        )
        .values_list("execution_id", flat=True)
        .distinct()[:limit]
    )
    for pk in ids:
        advance_and_dispatch(pk)
    return len(ids)


def start_scheduled(limit: int = 500) -> int:
    """Sweep: start CREATED executions whose scheduled date has passed (their
    countdown message was lost). The ``ex_scheduled_start`` partial index
    keeps it to the few executions that wait for a date."""
    cutoff = timezone.now() - timedelta(seconds=1)
    ids = list(
        Execution.objects.filter(state=State.CREATED, scheduled_at__lt=cutoff)
        .order_by("scheduled_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        advance_and_dispatch(pk)
    return len(ids)


def sweep() -> dict[str, int]:
    dead = declare_dead_workers() if watched() else []
    result = {"dead_workers": len(dead), "recovered": 0}
    if settings.ORCHESTRA_AUTO_RECOVER:
        result["recovered"] = recover_orphans()
    result["redispatched"] = redispatch_lost()
    result["forced_stops"] = force_killing()
    result["woken"] = wake_paused()
    result["scheduled_started"] = start_scheduled()
    return result
