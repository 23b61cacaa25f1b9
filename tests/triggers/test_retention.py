"""Trigger events are purged after the retention period, in batches, without
touching pending work or making a schedule fire a date again."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from executions.models import Execution, TriggerEvent
from executions.triggers.retention import purge_trigger_events
from executions.triggers.schedule import evaluate_schedules
from orchestra.celery import app

from .test_schedule import deploy


def _event(age_days: float, status: str = "fired", n: int = 0) -> TriggerEvent:
    return TriggerEvent.objects.create(
        namespace="tests.ret",
        flow_id="f",
        trigger_id="t",
        kind="schedule",
        scheduled_at=timezone.now() - timedelta(days=age_days, minutes=n),
        status=status,
        created_at=timezone.now() - timedelta(days=age_days, minutes=n),
    )


def test_old_events_go_in_batches_and_pending_and_recent_ones_stay(db, settings):
    settings.ORCHESTRA_TRIGGER_EVENT_RETENTION_DAYS = 30
    old = [
        _event(40, status, n)
        for n, status in enumerate(["fired", "skipped", "failed", "fired", "fired"])
    ]
    pending = _event(40, "pending", 9)
    recent = _event(29)
    first = purge_trigger_events(batch=2, max_batches=2)
    assert (first.deleted, first.more) == (4, True)
    # Oldest first: the newest old one is what is left.
    assert set(TriggerEvent.objects.values_list("pk", flat=True)) == {
        old[0].pk,
        pending.pk,
        recent.pk,
    }
    second = purge_trigger_events(batch=2, max_batches=2)
    assert (second.deleted, second.more) == (1, False)
    assert set(TriggerEvent.objects.values_list("pk", flat=True)) == {
        pending.pk,
        recent.pk,
    }


def test_zero_days_keeps_everything(db, settings):
    settings.ORCHESTRA_TRIGGER_EVENT_RETENTION_DAYS = 0
    _event(400)
    assert purge_trigger_events().deleted == 0
    assert purge_trigger_events(days=10).deleted == 1


def test_a_purged_date_does_not_fire_again(db):
    trigger = deploy()
    t0 = trigger.next_date
    assert len(evaluate_schedules(now=t0).fired) == 1
    event = TriggerEvent.objects.get(flow_id="report")
    assert purge_trigger_events(now=event.created_at + timedelta(days=31)).deleted == 1
    assert evaluate_schedules(now=t0).fired == []
    assert evaluate_schedules(now=t0 + timedelta(minutes=1)).fired == []
    assert Execution.objects.filter(flow_id="report").count() == 1


def test_beat_runs_the_purge_every_hour(db):
    entry = settings.CELERY_BEAT_SCHEDULE["purge-trigger-events"]
    assert entry["schedule"] == 3600.0
    # What a worker does when it starts: find every app's tasks module.
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    _event(400)
    assert app.tasks[entry["task"]].apply().get() == {"deleted": 1, "more": False}
