"""Recovery of task runs whose worker is gone, whatever way it went."""

from __future__ import annotations

import pytest

from executions.engine.executor import advance_and_dispatch
from executions.engine.liveness import recover_orphans
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import State, TaskRun
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


def _running(deploy, worker):
    execution = create_execution(deploy(FLOW), actor=Actor.system("test"))
    advance_and_dispatch(execution.pk)
    tr = TaskRun.objects.get(execution=execution, task_id="work")
    TaskRun.objects.filter(pk=tr.pk).update(state=State.RUNNING, worker=worker)
    return execution, tr


@pytest.mark.parametrize(
    "how, reason",
    [
        ("stopped", "shut down while running it"),
        ("deleted", "its worker record no longer exists"),
    ],
)
def test_a_task_run_left_by_a_stopped_or_deleted_worker_fails_and_errors_run(
    db, deploy, recorder, how, reason
):
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
