"""Stuck detection and cleanup against real Celery worker processes."""

from __future__ import annotations

import time
from datetime import timedelta

from django.utils import timezone

from executions.engine.liveness import declare_dead_workers, sweep
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import Cause, Execution, State, StateChange, TaskRun, Worker
from executions.stuck.cleanup import run_cleanup
from executions.stuck.detect import detect
from tests.conftest import wait_for

SLEEPY = """
id: sleepy
namespace: tests.stuck
tasks:
  - id: nap
    type: Sleep
    duration: PT30S
"""


def _backdate(execution, minutes: int, progress: bool = True) -> None:
    """Make the execution look old (and silent) without waiting minutes."""
    past = timezone.now() - timedelta(minutes=minutes)
    values = {"created_at": past}
    if progress:
        values["progress_at"] = past
    Execution.objects.filter(pk=execution.pk).update(**values)


def _running_on(execution, worker):
    return wait_for(
        lambda: TaskRun.objects.filter(
            execution=execution,
            state=State.RUNNING,
            worker=worker.worker,
            flowable=False,
        ).first(),
        30,
        what="task run to start on the worker",
    )


def test_a_sigkilled_worker_orphans_its_execution_which_cleanup_cancels(
    deploy, start_worker, settings
):
    settings.ORCHESTRA_AUTO_RECOVER = False
    w1 = start_worker("w1")
    execution = create_execution(deploy(SLEEPY), actor=Actor.system("test"))
    tr = _running_on(execution, w1)
    w1.sigkill()
    wait_for(
        lambda: (
            sweep()["dead_workers"]
            or Worker.objects.get(pk=w1.worker.pk).state == "dead"
        ),
        10,
        interval=0.2,
        what="the worker to be declared dead",
    )
    _backdate(
        execution, 10, progress=False
    )  # older than the threshold, recent progress

    found = detect(older_than_minutes=1)
    verdict = found.by_id[execution.pk]
    assert (verdict.stuck, verdict.kind, verdict.worker) == (
        True,
        "orphaned",
        w1.worker.name,
    )
    assert f"worker {w1.worker.name}, declared dead" in verdict.reason
    # Automatic recovery is off: the task run still waits for a human.
    assert TaskRun.objects.get(pk=tr.pk).state == State.RUNNING

    result = run_cleanup(older_than_minutes=1, actor=Actor(Cause.CLI, "ops"))
    assert result["execution_ids"] == [execution.pk]
    execution.refresh_from_db()
    assert execution.state == State.CANCELLED
    assert TaskRun.objects.get(pk=tr.pk).state == State.CANCELLED
    change = StateChange.objects.get(
        execution=execution, taskrun=None, to_state="CANCELLED"
    )
    assert (change.cause, change.actor) == ("cli", "ops")
    assert change.details["worker"] == w1.worker.name


def test_a_healthy_long_task_on_a_live_worker_is_never_stuck(deploy, celery_worker):
    execution = create_execution(
        deploy(SLEEPY.replace("PT30S", "PT4S")), actor=Actor.system("test")
    )
    _running_on(execution, celery_worker)
    # Days old and silent for days, as far as the rows tell: its worker beats.
    _backdate(execution, 60 * 24 * 3)
    for _ in range(6):  # several liveness timeouts (0.5 s x 3) pass
        declare_dead_workers()
        found = detect(older_than_minutes=1)
        assert found.stuck == []
        assert found.by_id[execution.pk].kind == "running"
        assert (
            run_cleanup(older_than_minutes=1, actor=Actor(Cause.CLI, "ops"))[
                "execution_ids"
            ]
            == []
        )
        time.sleep(0.4)
    wait_for(
        lambda: Execution.objects.get(pk=execution.pk).is_terminal,
        20,
        what="the long task to finish",
    )
    assert Execution.objects.get(pk=execution.pk).state == State.SUCCESS


def test_cancelling_a_lost_execution_stops_its_queued_work(deploy, start_worker):
    # No worker yet: the start message waits in the broker.
    execution = create_execution(
        deploy(SLEEPY.replace("PT30S", "PT0.1S")), actor=Actor.system("test")
    )
    _backdate(execution, 10)
    result = run_cleanup(older_than_minutes=5, actor=Actor(Cause.API, "ops"))
    assert result["execution_ids"] == [execution.pk]
    assert result["reasons"][str(execution.pk)].startswith("lost: created")
    w1 = start_worker("w1")
    # The worker consumes what was queued and runs nothing of it.
    time.sleep(2)
    execution.refresh_from_db()
    assert execution.state == State.CANCELLED
    assert not TaskRun.objects.filter(execution=execution).exists()
    assert w1.proc.poll() is None
