"""Celery beat entry points of the SLA sweep (see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from sla.sweep import run, tick


@shared_task(name="orchestra.sla_sweep", ignore_result=True)
def sla_sweep() -> dict:
    return run().as_dict()


@shared_task(name="orchestra.sla_tick", ignore_result=True)
def sla_tick() -> dict:
    """Every ORCHESTRA_SLA_TICK_SECONDS: deadlines due since the last tick."""
    return tick().as_dict()
