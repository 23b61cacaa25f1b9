"""The real scheduler: Celery beat sends the evaluation, a real worker runs
it, and a restart of beat leaves neither duplicates nor gaps."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from executions.models import Execution, TriggerEvent
from flows.models import save_flow
from tests import conftest
from tests.conftest import ROOT, wait_for

FLOW = """
id: ticking
namespace: tests.beat
tasks:
  - id: r
    type: Return
    format: "{{ trigger.date }}"
triggers:
  - id: every2s
    type: Schedule
    cron: "*/2 * * * * *"
    recoverMissedSchedules: ALL
"""

# Celery beat is started here, not through a fixture (the worker comes from one).
pytestmark = pytest.mark.subprocess


def start_beat(name: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": conftest.test_database_url(),
        "PYTHONPATH": str(ROOT),
        "ORCHESTRA_SCHEDULE_SECONDS": "0.5",
    }
    log = open(Path(settings.ORCHESTRA_HOME) / f"beat-{name}.log", "w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "orchestra",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(Path(settings.ORCHESTRA_HOME) / f"beat-{name}.db"),
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        proc.wait(15)


def fired() -> list:
    return sorted(
        TriggerEvent.objects.filter(flow_id="ticking").values_list(
            "scheduled_at", flat=True
        )
    )


def test_beat_fires_a_schedule_and_a_restart_leaves_no_gap_or_duplicate(start_worker):
    save_flow(FLOW, actor="test")
    start_worker("w1")
    beat = start_beat("one")
    try:
        wait_for(lambda: len(fired()) >= 2, 30, what="beat to fire the schedule")
    finally:
        stop(beat)  # the scheduler goes down...
    down = len(fired())
    time.sleep(4)
    assert len(fired()) <= down + 1  # (one evaluation may have been in flight)
    beat = start_beat("two")  # ...and comes back
    try:
        wait_for(lambda: len(fired()) >= down + 4, 30, what="beat to fire again")
    finally:
        stop(beat)
    dates = fired()
    assert len(dates) == len(set(dates))
    steps = {b - a for a, b in zip(dates, dates[1:], strict=False)}
    assert steps == {timedelta(seconds=2)}, dates  # every date, each once
    wait_for(
        lambda: (
            not Execution.objects.filter(flow_id="ticking")
            .exclude(state="SUCCESS")
            .exists()
        ),
        30,
        what="the scheduled runs to succeed",
    )
    run = Execution.objects.filter(flow_id="ticking").order_by("id").first()
    assert run.taskruns.get().outputs["value"] == run.trigger["variables"]["date"]
