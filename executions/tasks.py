"""Celery tasks: thin wrappers around plain functions that tests call directly."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from executions.engine.executor import advance_and_dispatch
from executions.engine.liveness import sweep
from executions.engine.worker import run_chain
from executions.lifecycle.admission import release_all
from executions.stuck.cleanup import auto_cleanup
from executions.stuck.retention import purge_cleanup_previews as purge_previews
from executions.triggers.flow import process_pending
from executions.triggers.retention import purge_trigger_events as purge
from executions.triggers.schedule import evaluate_schedules as evaluate

COMMON = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="orchestra.advance", **COMMON)
def advance_task(execution_id: int) -> None:
    advance_and_dispatch(execution_id)


@shared_task(name="orchestra.run_task", **COMMON)
def run_task(taskrun_id: int) -> int:
    return run_chain(taskrun_id)


@shared_task(name="orchestra.liveness_sweep", ignore_result=True)
def liveness_sweep() -> dict:
    return sweep()


@shared_task(name="orchestra.stuck_auto_cleanup", ignore_result=True)
def stuck_auto_cleanup() -> dict:
    return auto_cleanup()


@shared_task(name="orchestra.evaluate_schedules", ignore_result=True)
def evaluate_schedules() -> dict:
    """Beat: fire due schedules; then, as safety nets, start Flow-trigger
    events a crash left pending and queued executions whose slot is free."""
    result = evaluate().as_dict()
    result["flow_triggers"] = process_pending(older_than=timedelta(seconds=10))
    result["dequeued"] = release_all()
    return result


@shared_task(name="orchestra.purge_trigger_events", bind=True, ignore_result=True)
def purge_trigger_events(self) -> dict:
    """Beat (hourly): delete old trigger events in bounded batches; when more
    are left, enqueue the next pass instead of running long."""
    result = purge()
    if result.more:
        self.apply_async(countdown=1)
    return result.as_dict()


@shared_task(name="orchestra.purge_cleanup_previews", bind=True, ignore_result=True)
def purge_cleanup_previews(self) -> dict:
    """Beat (hourly): delete unconfirmed cleanup previews older than a day in
    bounded batches; when more are left, enqueue the next pass."""
    result = purge_previews()
    if result.more:
        self.apply_async(countdown=1)
    return result.as_dict()
