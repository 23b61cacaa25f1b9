"""Rows in the states stuck detection judges, built directly (no engine)."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone

from executions.models import Execution, State, TaskRun, Worker

_names = itertools.count(1)


def make_execution(
    state=State.RUNNING, age=30, progress=None, ns="team.etl", flow="job", parent=None
) -> Execution:
    """An execution created ``age`` minutes ago, last progress ``progress``
    minutes ago (default: when it was created)."""
    now = timezone.now()
    return Execution.objects.create(
        namespace=ns,
        flow_id=flow,
        state=state,
        created_at=now - timedelta(minutes=age),
        progress_at=now - timedelta(minutes=age if progress is None else progress),
        started_at=now - timedelta(minutes=age),
        parent=parent,
    )


def make_worker(alive=True, silent_for=None, state=None) -> Worker:
    """A worker row: heartbeating now, or silent for ``silent_for`` seconds."""
    now = timezone.now()
    beat = now - timedelta(seconds=silent_for or 0)
    n = next(_names)
    return Worker.objects.create(
        name=f"host-{n}:{1000 + n}:ab{n:02d}",
        hostname=f"host-{n}",
        pid=1000 + n,
        state=state or ("alive" if alive else "dead"),
        last_heartbeat_at=beat,
        dead_at=None if alive else now - timedelta(minutes=1),
    )


def make_taskrun(
    execution,
    state=State.RUNNING,
    worker=None,
    task_id="work",
    attempt=1,
    scheduled_in=None,
    created_age=None,
    flowable=False,
) -> TaskRun:
    now = timezone.now()
    created = now - timedelta(minutes=created_age) if created_age is not None else now
    return TaskRun.objects.create(
        execution=execution,
        task_id=task_id,
        state=state,
        worker=worker,
        attempt=attempt,
        flowable=flowable,
        created_at=created,
        scheduled_at=now + timedelta(minutes=scheduled_in)
        if scheduled_in is not None
        else None,
        started_at=now if state == State.RUNNING else None,
    )


class Heartbeat:
    """Keeps a worker row beating from a thread, as a live worker does."""

    def __init__(self, worker: Worker, interval: float = 0.2):
        import threading

        self.worker, self.interval = worker, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from django.db import connection

        while not self.stop.wait(self.interval):
            Worker.objects.filter(pk=self.worker.pk).update(
                last_heartbeat_at=timezone.now()
            )
        connection.close()

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)
