"""Worker registry, heartbeats and recovery of work lost with a dead worker.

Every process that runs tasks has a Worker row and a heartbeat thread. A
worker is declared dead only after ``ORCHESTRA_MISSED_HEARTBEATS`` beats in a
row are missing, so one slow beat never kills healthy work. The task runs a
dead worker held are re-queued when their retry policy allows, otherwise
failed with "worker lost" so the flow's ``errors`` branch runs.

The sweep is also the net for other lost messages: task runs and executions
nobody advanced, pauses past their wake-up time and executions past their
``scheduleDate`` (whose countdown ``advance`` never arrived).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from datetime import timedelta

from celery import signals
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from executions import dispatch
from executions.engine.executor import advance_and_dispatch
from executions.engine.retry import schedule_retry
from executions.lifecycle import machine, stop
from executions.lifecycle.actor import Actor
from executions.models import (
    Cause,
    Execution,
    State,
    StateChange,
    TaskRun,
    Worker,
    WorkerState,
)

log = logging.getLogger("orchestra.liveness")

LIVENESS = Actor.system("liveness", Cause.SWEEP)

_local = threading.local()
_process: dict[str, object] = {}
_lock = threading.Lock()


def liveness_timeout() -> timedelta:
    return timedelta(
        seconds=settings.ORCHESTRA_HEARTBEAT_SECONDS
        * settings.ORCHESTRA_MISSED_HEARTBEATS
    )


def current_worker(queues: str = "") -> Worker:
    """This process's Worker row, registered (with its heartbeat) on first use."""
    pid = os.getpid()
    with _lock:
        worker = _process.get("worker")
        if worker is not None and _process.get("pid") == pid:
            return worker  # type: ignore[return-value]
        hostname = socket.gethostname()
        now = timezone.now()
        # A fresh identity per registration: a worker declared dead never
        # comes back under the same row, so its orphans stay orphans.
        worker = Worker.objects.create(
            name=f"{hostname}:{pid}:{secrets.token_hex(2)}",
            hostname=hostname,
            pid=pid,
            queues=queues,
            state=WorkerState.ALIVE,
            started_at=now,
            last_heartbeat_at=now,
        )
        _process.update(worker=worker, pid=pid)
        stop = threading.Event()
        _process["stop"] = stop
        thread = threading.Thread(
            target=_beat,
            args=(worker.pk, stop),
            name="orchestra-heartbeat",
            daemon=True,
        )
        thread.start()
        _process["thread"] = thread
        return worker


def _beat(worker_id: int, stop: threading.Event) -> None:
    interval = settings.ORCHESTRA_HEARTBEAT_SECONDS
    while not stop.wait(interval):
        try:
            close_old_connections()
            updated = Worker.objects.filter(
                pk=worker_id, state=WorkerState.ALIVE
            ).update(last_heartbeat_at=timezone.now())
            if not updated:
                # Declared dead while alive (a long pause) or removed: its task
                # runs were recovered already. Forget this identity; the next
                # task registers a new one.
                log.error(
                    "worker %s was declared dead; registering anew on the next task",
                    worker_id,
                )
                with _lock:
                    if getattr(_process.get("worker"), "pk", None) == worker_id:
                        _process.pop("worker", None)
                return
        except Exception:  # noqa: BLE001 — a database blip must not end the heartbeat thread
            log.exception("heartbeat failed")
            connection.close()
    connection.close()


def forget_current_worker() -> None:
    """Drop this process's identity without touching the database (tests)."""
    with _lock:
        stop = _process.pop("stop", None)
        _process.pop("worker", None)
        thread = _process.pop("thread", None)
    if stop is not None:
        stop.set()  # type: ignore[union-attr]
    if (
        isinstance(thread, threading.Thread)
        and thread is not threading.current_thread()
    ):
        # Its database connection closes as it ends: wait, so a test database
        # can be dropped right after.
        thread.join(timeout=2)


def stop_current_worker() -> None:
    with _lock:
        worker = _process.pop("worker", None)
        stop = _process.pop("stop", None)
    if stop is not None:
        stop.set()  # type: ignore[union-attr]
    if worker is not None:
        Worker.objects.filter(pk=worker.pk, state=WorkerState.ALIVE).update(  # type: ignore[union-attr]
            state=WorkerState.STOPPED
        )


@signals.worker_ready.connect
def _worker_ready(sender=None, **kwargs) -> None:
    # Register at start so `orchestra` commands can tell a worker is up.
    queues = ""
    try:
        queues = ",".join(q.name for q in sender.app.amqp.queues.consume_from.values())
    except Exception:  # noqa: BLE001
        pass
    current_worker(queues)


@signals.worker_process_init.connect
def _forked_child(**kwargs) -> None:
    # A forked pool process must register itself, not reuse its parent's row.
    _process.clear()


@signals.worker_process_shutdown.connect
def _child_exit(**kwargs) -> None:
    try:
        stop_current_worker()
    except Exception:  # noqa: BLE001
        pass


@signals.worker_shutdown.connect
def _worker_exit(**kwargs) -> None:
    try:
        stop_current_worker()
    except Exception:  # noqa: BLE001
        pass


# --- the sweep -----------------------------------------------------------
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


def recover_orphans(limit: int = 500) -> int:
    """Re-queue or fail the task runs held by dead workers. Returns how many."""
    recovered = 0
    # Held by a worker declared dead, by one that stopped (a cold shutdown
    # ends its tasks with the process; their redelivered messages find the
    # task run no longer CREATED and drop it) and stays silent, or by a
    # worker row that no longer exists.
    silent = timezone.now() - liveness_timeout()
    orphans = TaskRun.objects.filter(
        Q(worker__state=WorkerState.DEAD)
        | Q(worker__state=WorkerState.STOPPED, worker__last_heartbeat_at__lt=silent)
        | Q(worker__isnull=True),
        state=State.RUNNING,
        flowable=False,
    ).select_related("worker")[:limit]
    for tr in orphans:
        if tr.worker is None:
            reason = "worker lost: its worker record no longer exists"
        elif tr.worker.state == WorkerState.STOPPED:
            reason = f"worker lost: {tr.worker.name} shut down while running it"
        else:
            reason = f"worker lost: {tr.worker.name} stopped sending heartbeats"
        with transaction.atomic():
            execution = Execution.objects.select_for_update().get(pk=tr.execution_id)
            if not machine.transition_taskrun(
                tr,
                State.FAILED,
                reason=reason,
                fields={"error": reason},
                only_if={"worker_id": tr.worker_id},
                actor=LIVENESS,
            ):
                continue
            node = execution.spec.task(tr.task_id)
            nxt = None
            if node is not None and execution.state in (State.RUNNING, State.PAUSED):
                nxt = schedule_retry(tr, node, reason)
            if nxt is not None:
                dispatch.get().run_taskrun(nxt.pk, eta=nxt.scheduled_at)
        recovered += 1
        advance_and_dispatch(tr.execution_id)
    return recovered


def redispatch_lost(age: timedelta | None = None, limit: int = 500) -> int:
    """Send again what a lost message left waiting (a broker restart without
    persistence, a crash between commit and send). Claims are conditional,
    so a duplicate is harmless."""
    age = age or liveness_timeout() * 2
    cutoff = timezone.now() - age
    count = 0
    waiting = (
        TaskRun.objects.filter(state=State.CREATED, created_at__lt=cutoff)
        .exclude(scheduled_at__gt=cutoff)
        .values_list("pk", flat=True)[:limit]
    )
    for pk in waiting:
        with transaction.atomic():
            dispatch.get().run_taskrun(pk)
        count += 1
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
    dead = declare_dead_workers()
    result = {"dead_workers": len(dead), "recovered": 0}
    if settings.ORCHESTRA_AUTO_RECOVER:
        result["recovered"] = recover_orphans()
    result["redispatched"] = redispatch_lost()
    result["forced_stops"] = force_killing()
    result["woken"] = wake_paused()
    result["scheduled_started"] = start_scheduled()
    return result
