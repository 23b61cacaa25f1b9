"""Celery beat entry point of the SLA sweep (see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from sla.sweep import run


@shared_task(name="orchestra.sla_sweep", ignore_result=True)
def sla_sweep() -> dict:
    return run().as_dict()
