"""Recovery rounds have their own queue: they never wait behind the work."""

from __future__ import annotations

from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import ServiceBeat, State, TaskRun
from orchestra.celery import app
from tests.conftest import wait_for

BUSY = """
id: busy
namespace: tests.control
tasks:
  - id: hold
    type: Sleep
    duration: PT40S
"""


def test_a_control_worker_runs_the_sweep_while_every_work_slot_is_busy(
    deploy, start_worker
):
    work = start_worker("work", concurrency=1, queues="celery")
    start_worker("control", concurrency=1, queues="orchestra.control")
    execution = create_execution(deploy(BUSY), actor=Actor.system("test"))
    wait_for(
        lambda: TaskRun.objects.filter(
            execution=execution, state=State.RUNNING, worker=work.worker
        ).exists(),
        30,
        what="the only work slot to be taken",
    )
    assert not ServiceBeat.objects.filter(name="scheduler").exists()
    # As beat sends it: by name, routed to the control queue.
    app.send_task("orchestra.liveness_sweep")
    wait_for(
        lambda: ServiceBeat.objects.filter(name="scheduler").exists(),
        30,
        what="the sweep to run on the control worker",
    )
    # Still busy: the sweep did not wait for it.
    assert TaskRun.objects.get(execution=execution, task_id="hold").state == (
        State.RUNNING
    )


def test_a_worker_started_without_queues_consumes_both(deploy, celery_worker):
    app.send_task("orchestra.liveness_sweep")
    wait_for(
        lambda: ServiceBeat.objects.filter(name="scheduler").exists(),
        30,
        what="the sweep to run on the default worker",
    )
