"""This process's worker identity: registration, heartbeats and its lease.

Every process that runs tasks has a Worker row and a heartbeat thread. Each
beat also reports the task runs the process holds (claimed, outcome not yet
recorded), so the liveness sweep (``liveness.py``) can tell a live worker that
lost a run from one still at work. A worker declared dead while it was alive
(a long pause) finds out at its next beat or lease check: its identity is
fenced, the tasks it still runs stop at their next check and report nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time

from celery import signals
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from executions.heartbeats import liveness_timeout
from executions.models import Worker, WorkerState

log = logging.getLogger("orchestra.liveness")


_process: dict[str, object] = {}
_lock = threading.Lock()
# Task runs this process is executing (claimed, not yet recorded): each
# heartbeat reports them, so liveness can tell a live worker that lost a task
# run's outcome (a database outage while finishing) from one still at work.
_held: set[int] = set()
# Worker identities of this process that were declared dead (a long pause):
# their task runs belong to someone else now.
_fenced: set[int] = set()


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
            running=[],
        )
        if _process.get("pid") != pid:
            _held.clear()  # a forked child inherits nothing it runs
        _process.update(worker=worker, pid=pid, beat_ok=time.monotonic())
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


def hold(taskrun_id: int) -> None:
    """This process is now executing ``taskrun_id`` (reported at each beat)."""
    with _lock:
        _held.add(taskrun_id)


def release(taskrun_id: int) -> None:
    """Its outcome is recorded (or was refused): no longer reported."""
    with _lock:
        _held.discard(taskrun_id)


def held() -> list[int]:
    with _lock:
        return sorted(_held)


def _beat(worker_id: int, stop: threading.Event) -> None:
    interval = settings.ORCHESTRA_HEARTBEAT_SECONDS
    while not stop.wait(interval):
        try:
            close_old_connections()
            updated = Worker.objects.filter(
                pk=worker_id, state=WorkerState.ALIVE
            ).update(last_heartbeat_at=timezone.now(), running=held())
            if not updated:
                # Declared dead while alive (a long pause) or removed: its task
                # runs were recovered already. Fence this identity, so the
                # tasks still running under it stop at their next check and
                # report nothing; the next task registers a new one.
                log.error(
                    "worker %s was declared dead; stopping its running tasks and "
                    "registering anew on the next task",
                    worker_id,
                )
                with _lock:
                    _fenced.add(worker_id)
                    if getattr(_process.get("worker"), "pk", None) == worker_id:
                        _process.pop("worker", None)
                return
            with _lock:
                if getattr(_process.get("worker"), "pk", None) == worker_id:
                    _process["beat_ok"] = time.monotonic()
        except Exception:  # noqa: BLE001 — a database blip must not end the heartbeat thread
            log.exception("heartbeat failed")
            connection.close()
    connection.close()


def lease_lost(worker_id: int | None) -> str:
    """Why this process may no longer act for ``worker_id`` ('' while it may).

    Checked before a task's side effects, at every kill check and before an
    outcome is recorded. Cheap while heartbeats succeed; once the last good
    beat is older than the liveness timeout (the process was paused, or the
    database was away) it asks the database whether the worker was declared
    dead. When the database cannot answer it says nothing: the conditional
    finish (claiming worker and resubmission) is the last fence.
    """
    if worker_id is None:
        return ""
    with _lock:
        if worker_id in _fenced:
            return "this worker was declared dead while it ran the task"
        current = _process.get("worker")
        beat_ok = _process.get("beat_ok")
    if getattr(current, "pk", None) != worker_id or not isinstance(beat_ok, float):
        return ""
    if time.monotonic() - beat_ok < liveness_timeout().total_seconds():
        return ""
    try:
        state = (
            Worker.objects.filter(pk=worker_id).values_list("state", flat=True).first()
        )
    except Exception:  # noqa: BLE001 — unknown; the conditional finish decides
        return ""
    if state == WorkerState.ALIVE:
        return ""
    with _lock:
        _fenced.add(worker_id)
    return "this worker was declared dead while it ran the task"


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
