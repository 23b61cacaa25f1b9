"""Recovery of task runs whose worker is gone, whatever way it went."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.engine.executor import advance_and_dispatch
from executions.engine.liveness import recover_orphans
from executions.engine.worker import _finish
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import State, StateChange, TaskRun
from tests.executions.stuck_helpers import make_worker

FLOW = """
id: recover
namespace: tests.recover
tasks:
  - id: work
    type: Sleep
    duration: PT30S
errors:
  - id: on_error
    type: Log
    message: recovering
"""


def _running(deploy, worker, source=FLOW, claimed_ago=0):
    execution = create_execution(deploy(source), actor=Actor.system("test"))
    advance_and_dispatch(execution.pk)
    tr = TaskRun.objects.get(execution=execution, task_id="work")
    TaskRun.objects.filter(pk=tr.pk).update(
        state=State.RUNNING,
        worker=worker,
        started_at=timezone.now() - timedelta(seconds=claimed_ago),
    )
    tr.refresh_from_db()
    return execution, tr


@pytest.mark.parametrize(
    "how, reason",
    [
        ("stopped", "shut down while running it"),
        ("deleted", "its worker record no longer exists"),
    ],
)
def test_a_task_run_left_by_a_stopped_or_deleted_worker_fails_and_errors_run(
    db, deploy, recorder, settings, how, reason
):
    settings.ORCHESTRA_WORKER_LOST_RESUBMITS = 0
    worker = make_worker(state="stopped", silent_for=60)
    execution, tr = _running(deploy, worker)
    if how == "deleted":
        worker.delete()
    assert recover_orphans() == 1
    tr.refresh_from_db()
    assert tr.state == State.FAILED and reason in tr.error
    assert execution.taskruns.filter(task_id="on_error").exists()


def test_a_worker_that_just_stopped_is_given_the_liveness_timeout(db, deploy, recorder):
    worker = make_worker(state="stopped")  # last beat just now: may still be finishing
    _, tr = _running(deploy, worker)
    assert recover_orphans() == 0
    assert TaskRun.objects.get(pk=tr.pk).state == State.RUNNING


def _history(tr):
    return list(
        StateChange.objects.filter(taskrun=tr)
        .order_by("id")
        .values_list("from_state", "to_state", "actor", "reason")
    )


def test_a_lost_worker_is_not_the_tasks_failure_it_is_resubmitted_then_failed(
    db, deploy, recorder, settings
):
    """Each loss sends the same attempt back to CREATED for another worker
    (history says so); once the resubmissions are spent it fails, and the
    errors branch runs."""
    settings.ORCHESTRA_WORKER_LOST_RESUBMITS = 2
    execution, tr = _running(deploy, make_worker(alive=False))
    assert recover_orphans() == 1
    tr.refresh_from_db()
    assert (tr.state, tr.resubmits, tr.attempt, tr.worker_id) == (
        State.CREATED,
        1,
        1,
        None,
    )
    assert recorder.sent[-1] == tr.pk
    frm, to, actor, reason = _history(tr)[-1]
    assert (frm, to, actor) == ("RUNNING", "CREATED", "liveness")
    assert reason.startswith("resubmitted (1 of 2): worker lost: host-")
    assert not execution.taskruns.filter(task_id="on_error").exists()

    for expected in (2, None):
        TaskRun.objects.filter(pk=tr.pk).update(
            state=State.RUNNING, worker=make_worker(alive=False)
        )
        tr.refresh_from_db()
        assert recover_orphans() == 1
        tr.refresh_from_db()
        if expected:
            assert (tr.state, tr.resubmits) == (State.CREATED, expected)
    assert tr.state == State.FAILED and tr.attempt == 1
    assert tr.error.endswith("stopped sending heartbeats (after 2 resubmissions)")
    assert execution.taskruns.filter(task_id="on_error").exists()


def test_a_task_that_must_not_run_twice_opts_out_of_resubmission(
    db, deploy, recorder, settings
):
    settings.ORCHESTRA_WORKER_LOST_RESUBMITS = 2
    source = FLOW.replace(
        "    duration: PT30S\n",
        "    duration: PT30S\n    resubmitOnWorkerLoss: false\n",
    )
    assert "resubmitOnWorkerLoss" in source
    execution, tr = _running(deploy, make_worker(alive=False), source=source)
    assert recover_orphans() == 1
    tr.refresh_from_db()
    assert tr.state == State.FAILED and tr.error.startswith("worker lost: ")
    assert execution.taskruns.filter(task_id="on_error").exists()


def test_a_run_its_live_worker_no_longer_reports_is_lost_too(
    db, deploy, recorder, settings
):
    """A worker that beats but stopped naming a task run (its outcome could
    not be recorded) lost it: recovered like a dead worker's. One that names
    it, or that claimed it less than the liveness timeout ago, keeps it."""
    settings.ORCHESTRA_WORKER_LOST_RESUBMITS = 2
    worker = make_worker()
    execution, tr = _running(deploy, worker, claimed_ago=120)
    worker.running = [tr.pk]
    worker.save()
    assert recover_orphans() == 0

    worker.running = []
    worker.save()
    assert recover_orphans() == 1
    tr.refresh_from_db()
    assert tr.state == State.CREATED
    assert "is alive but no longer runs it" in _history(tr)[-1][3]

    # Just claimed: the worker's beats have not had the time to name it.
    TaskRun.objects.filter(pk=tr.pk).update(
        state=State.RUNNING, worker=worker, started_at=timezone.now()
    )
    assert recover_orphans() == 0
    # A worker that does not report at all is judged by its beats alone.
    TaskRun.objects.filter(pk=tr.pk).update(
        started_at=timezone.now() - timedelta(seconds=120)
    )
    worker.running = None
    worker.save()
    assert recover_orphans() == 0


def test_the_old_workers_late_outcome_is_refused_after_a_resubmission(
    db, deploy, recorder, settings
):
    """Even when the resubmitted run is claimed again by the same worker
    identity, the outcome of the lost claim does not count."""
    settings.ORCHESTRA_WORKER_LOST_RESUBMITS = 2
    worker = make_worker()
    execution, tr = _running(deploy, worker, claimed_ago=120)
    worker.running = []
    worker.save()
    late = TaskRun.objects.get(pk=tr.pk)  # what the lost claim still holds
    assert recover_orphans() == 1
    TaskRun.objects.filter(pk=tr.pk).update(state=State.RUNNING, worker=worker)
    _finish(late, None, State.SUCCESS, {"late": True}, "", worker.pk)
    tr.refresh_from_db()
    assert tr.state == State.RUNNING and tr.outputs == {}
    assert execution.logs.filter(message__contains="dropped").exists()


def test_right_after_the_database_restarted_no_worker_is_declared_dead(
    db, recorder, monkeypatch
):
    """A database restart silences every worker's heartbeats: the first
    rounds after it must not take them all for dead. They wait one liveness
    timeout from the database's start, in which live workers beat again."""
    from executions.engine import liveness
    from executions.heartbeats import liveness_timeout
    from executions.models import Worker

    silent = make_worker(silent_for=300)
    monkeypatch.setattr(liveness, "_database_started_at", lambda: timezone.now())
    assert liveness.sweep()["dead_workers"] == 0
    assert Worker.objects.get(pk=silent.pk).state == "alive"
    started = timezone.now() - liveness_timeout() - timedelta(seconds=1)
    monkeypatch.setattr(liveness, "_database_started_at", lambda: started)
    assert liveness.sweep()["dead_workers"] == 1
    assert Worker.objects.get(pk=silent.pk).state == "dead"


def test_the_database_start_time_is_read_from_postgresql(postgres):
    from executions.engine.liveness import _database_started_at

    started = _database_started_at()
    assert started is not None and started < timezone.now()


def test_a_silent_worker_is_declared_dead_at_the_next_round(db, recorder):
    from executions.engine.liveness import sweep
    from executions.models import Worker

    silent = make_worker(silent_for=300)
    assert sweep()["dead_workers"] == 1
    assert Worker.objects.get(pk=silent.pk).state == "dead"
    again = make_worker(silent_for=300)
    assert sweep()["dead_workers"] == 1
    assert Worker.objects.get(pk=again.pk).state == "dead"


def test_a_waiting_task_run_is_sent_again_with_a_backoff_not_every_round(
    db, deploy, recorder
):
    """A message that is only slow (a backlog) must not get a copy every
    round, or the copies become the backlog (bench/chaos.py saw 3,000)."""
    from executions.engine.liveness import redispatch_lost

    execution = create_execution(deploy(FLOW), actor=Actor.system("test"))
    advance_and_dispatch(execution.pk)
    tr = TaskRun.objects.get(execution=execution, task_id="work")
    TaskRun.objects.filter(pk=tr.pk).update(
        created_at=timezone.now() - timedelta(minutes=10)
    )
    recorder.sent.clear()
    redispatch_lost(age=timedelta(seconds=5))
    assert recorder.sent == [tr.pk]
    for _ in range(3):  # the next rounds: it was just sent again
        redispatch_lost(age=timedelta(seconds=5))
    assert recorder.sent == [tr.pk]
    # Resent 4 minutes ago, waiting 10: not yet (half its wait is 5 minutes).
    TaskRun.objects.filter(pk=tr.pk).update(
        redispatched_at=timezone.now() - timedelta(minutes=4)
    )
    redispatch_lost(age=timedelta(seconds=5))
    assert recorder.sent == [tr.pk]
    TaskRun.objects.filter(pk=tr.pk).update(
        redispatched_at=timezone.now() - timedelta(minutes=6)
    )
    redispatch_lost(age=timedelta(seconds=5))
    assert recorder.sent == [tr.pk, tr.pk]
