"""How the engine hands work on: Celery messages sent after commit.

``flows test`` swaps in an in-process dispatcher (a thread pool) so a flow runs
with no broker and no worker process.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

log = logging.getLogger("orchestra.dispatch")


def _send(task, args: tuple, options: dict) -> None:
    try:
        task.apply_async(args, **options)
    except Exception as exc:  # noqa: BLE001 — the row is committed; the sweep resends
        log.warning(
            "could not send %s%s to the broker (%s); the liveness sweep will send it again",
            task.name,
            args,
            exc,
        )


class CeleryDispatcher:
    def run_taskrun(self, taskrun_id: int, eta: datetime | None = None) -> None:
        from executions.tasks import run_task

        options = {"task_id": f"orchestra-taskrun-{taskrun_id}"}
        if eta and eta > timezone.now():
            options["countdown"] = (eta - timezone.now()).total_seconds()
        transaction.on_commit(lambda: _send(run_task, (taskrun_id,), options))

    def advance(self, execution_id: int, countdown: float | None = None) -> None:
        from executions.tasks import advance_task

        options = {"countdown": countdown} if countdown else {}
        transaction.on_commit(lambda: _send(advance_task, (execution_id,), options))

    def revoke(self, celery_ids: list[str]) -> None:
        if not celery_ids:
            return
        from orchestra.celery import app

        def send() -> None:
            try:
                app.control.revoke(celery_ids)
            except Exception:  # noqa: BLE001 — revoking is best effort; the claim check is the guard
                pass

        transaction.on_commit(send)


_dispatcher = CeleryDispatcher()


def get() -> CeleryDispatcher:
    return _dispatcher


def use(dispatcher) -> None:
    global _dispatcher
    _dispatcher = dispatcher
