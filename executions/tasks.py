"""Celery tasks: thin wrappers around plain functions that tests call directly."""

from __future__ import annotations

from celery import shared_task

COMMON = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="orchestra.advance", **COMMON)
def advance_task(execution_id: int) -> None:
    from executions.engine.worker import advance_and_dispatch

    advance_and_dispatch(execution_id)


@shared_task(name="orchestra.run_task", **COMMON)
def run_task(taskrun_id: int) -> int:
    from executions.engine.worker import run_chain

    return run_chain(taskrun_id)


@shared_task(name="orchestra.liveness_sweep", ignore_result=True)
def liveness_sweep() -> dict:
    from executions.engine.liveness import sweep

    return sweep()


@shared_task(name="orchestra.stuck_auto_cleanup", ignore_result=True)
def stuck_auto_cleanup() -> dict:
    from executions.cleanup import auto_cleanup

    return auto_cleanup()
