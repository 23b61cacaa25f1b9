"""Run executions inside this process: no broker, no worker process.

Used by ``orchestra flows test`` and by tests. Task runs go to a thread pool
(so Parallel branches really run at the same time); the executor runs in the
calling thread.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from executions import dispatch
from executions.engine.executor import advance_and_dispatch
from executions.engine.worker import run_chain


class InProcessDispatcher:
    def __init__(self, workers: int = 8):
        self.pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="orchestra-task"
        )
        self.pending = 0
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []
        self.timers: list[threading.Timer] = []

    def _submit(self, fn, *args) -> None:
        with self.lock:
            self.pending += 1

        def job() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 — surfaced by wait()
                self.errors.append(exc)
            finally:
                connection.close()
                with self.lock:
                    self.pending -= 1

        self.pool.submit(job)

    def run_taskrun(self, taskrun_id: int, eta: datetime | None = None) -> None:
        def go() -> None:
            if eta:
                delay = (eta - timezone.now()).total_seconds()
                if delay > 0:
                    time.sleep(delay)
            close_old_connections()
            run_chain(taskrun_id)

        transaction.on_commit(lambda: self._submit(go))

    def advance(self, execution_id: int, countdown: float | None = None) -> None:
        def go() -> None:
            close_old_connections()
            advance_and_dispatch(execution_id)

        if not countdown:
            transaction.on_commit(lambda: self._submit(go))
            return

        # Like a Celery countdown: a timer, not a pool thread asleep. (A timer
        # is not pending work: a paused execution is not terminal anyway.)
        def arm() -> None:
            timer = threading.Timer(countdown, self._submit, (go,))
            timer.daemon = True
            self.timers.append(timer)
            timer.start()

        transaction.on_commit(arm)

    def revoke(self, celery_ids: list[str]) -> None:
        pass  # claims are conditional: a killed task run is never started

    def idle(self) -> bool:
        with self.lock:
            return self.pending == 0


class use_in_process:
    """Context manager: route the engine's work into this process."""

    def __init__(self, workers: int = 8):
        self.dispatcher = InProcessDispatcher(workers)

    def __enter__(self) -> InProcessDispatcher:
        self.previous = dispatch.get()
        dispatch.use(self.dispatcher)
        return self.dispatcher

    def __exit__(self, *exc) -> None:
        dispatch.use(self.previous)
        for timer in self.dispatcher.timers:
            timer.cancel()
        self.dispatcher.pool.shutdown(wait=True, cancel_futures=True)
