"""How work is handed on: Celery messages, sent by task name after commit.

It imports nothing of the engine or of the tasks it names, so every layer
may hand work on without an import circle. ``flows test`` and tests swap in
an in-process dispatcher (``engine.inprocess``): a thread pool, no broker
and no worker process.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from orchestra.celery import app

log = logging.getLogger("orchestra.dispatch")

RUN_TASK = "orchestra.run_task"
ADVANCE = "orchestra.advance"


def _send(name: str, args: tuple, options: dict) -> None:
    try:
        app.send_task(name, args, **options)
    except Exception as exc:  # noqa: BLE001 — the row is committed; the sweep resends
        log.warning(
            "could not send %s%s to the broker (%s); the liveness sweep will send it again",
            name,
            args,
            exc,
        )


def message_id(taskrun_id: int) -> str:
    """The Celery task id of a task run's message: deterministic, so a
    queued message can be revoked by the task run's id alone."""
    return f"orchestra-taskrun-{taskrun_id}"


class CeleryDispatcher:
    def run_taskrun(self, taskrun_id: int, eta: datetime | None = None) -> None:
        options = {"task_id": message_id(taskrun_id)}
        if eta and eta > timezone.now():
            options["countdown"] = (eta - timezone.now()).total_seconds()
        transaction.on_commit(lambda: _send(RUN_TASK, (taskrun_id,), options))

    def advance(self, execution_id: int, countdown: float | None = None) -> None:
        options = {"countdown": countdown} if countdown else {}
        transaction.on_commit(lambda: _send(ADVANCE, (execution_id,), options))

    def revoke(self, celery_ids: list[str]) -> None:
        if not celery_ids:
            return

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
