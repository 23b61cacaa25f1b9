"""The engine through real Celery worker processes (Redis + PostgreSQL in CI)."""

from django.conf import settings

from executions.engine.liveness import sweep
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.lifecycle.stop import kill
from executions.models import State, StateChange, TaskRun, Worker
from tests.conftest import wait_for

SLEEPY = """
id: sleepy
namespace: tests.worker
tasks:
  - id: nap
    type: Sleep
    duration: PT30S
errors:
  - id: on_error
    type: Log
    message: "recovering after {{ execution.id }}"
"""

RETRYING = """
id: retrying
namespace: tests.worker
tasks:
  - id: nap
    type: Sleep
    duration: "{{ taskrun.attemptsCount == 0 and 'PT30S' or 'PT0.2S' }}"
    retry:
      type: constant
      interval: PT0.1S
      maxAttempt: 2
  - id: after
    type: Return
    format: "done after {{ taskrun.attemptsCount }}"
"""


def test_ci_uses_postgresql_and_redis(postgres, redis_broker):
    """In CI (ORCHESTRA_REQUIRE_SERVICES=1) the whole suite runs on the real services."""
    assert settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def test_a_flow_runs_to_success_on_a_real_worker(deploy, celery_worker):
    rev = deploy(
        "id: hello\nnamespace: tests.worker\ntasks:\n"
        "  - id: a\n    type: Return\n    format: 'hello {{ inputs.n }}'\n"
        "  - id: p\n    type: Parallel\n    tasks:\n"
        "      - id: b\n        type: Sleep\n        duration: PT0.2S\n"
        "      - id: c\n        type: Return\n        format: '{{ outputs.a.value }}!'\n"
        "inputs:\n  - id: n\n    type: INT\n"
        "outputs:\n  - id: o\n    type: STRING\n    value: '{{ outputs.c.value }}'\n"
    )
    execution = create_execution(rev, inputs={"n": "5"}, actor=Actor.system("test"))
    wait_for(
        lambda: execution.__class__.objects.get(pk=execution.pk).is_terminal,
        30,
        what="execution to end",
    )
    execution.refresh_from_db()
    assert execution.state == State.SUCCESS
    assert execution.outputs == {"o": "hello 5!"}
    workers = set(
        execution.taskruns.exclude(worker=None).values_list("worker__name", flat=True)
    )
    assert workers and all(name.split(":")[0] for name in workers)


def _wait_running(execution, worker):
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


def test_a_worker_killed_mid_task_is_resubmitted_to_another_worker(
    deploy, start_worker, settings
):
    """Worker loss is not the task's failure: the same attempt runs again on
    the next worker and the execution succeeds; the history says why."""
    settings.ORCHESTRA_WORKER_LOST_RESUBMITS = 2
    w1 = start_worker("w1")
    execution = create_execution(
        deploy(SLEEPY.replace("PT30S", "PT2S")), actor=Actor.system("test")
    )
    tr = _wait_running(execution, w1)
    w1.sigkill()
    w2 = start_worker("w2")

    def ended():
        sweep()
        execution.refresh_from_db()
        return execution.is_terminal

    wait_for(ended, 60, interval=0.3, what="the resubmitted task run to finish")
    assert execution.state == State.SUCCESS
    tr.refresh_from_db()
    assert (tr.state, tr.attempt, tr.resubmits) == (State.SUCCESS, 1, 1)
    assert tr.worker_id == w2.worker.pk
    assert not execution.taskruns.filter(task_id="on_error").exists()
    moves = list(
        StateChange.objects.filter(taskrun=tr)
        .order_by("id")
        .values_list("from_state", "to_state", "actor")
    )
    assert moves[-3:] == [
        ("RUNNING", "CREATED", "liveness"),
        ("CREATED", "RUNNING", w2.worker.name),
        ("RUNNING", "SUCCESS", ""),
    ]
    resubmitted = StateChange.objects.get(taskrun=tr, to_state=State.CREATED)
    assert resubmitted.reason == (
        f"resubmitted (1 of 2): worker lost: {w1.worker.name} stopped sending heartbeats"
    )


def test_a_worker_killed_mid_task_fails_its_task_run_and_runs_errors(
    deploy, start_worker, settings
):
    settings.ORCHESTRA_WORKER_LOST_RESUBMITS = 0  # resubmissions spent
    w1 = start_worker("w1")
    rev = deploy(SLEEPY)
    execution = create_execution(rev, actor=Actor.system("test"))
    tr = _wait_running(execution, w1)
    w1.sigkill()
    start_worker("w2")  # runs the errors branch

    def recovered():
        sweep()
        execution.refresh_from_db()
        return execution.is_terminal

    wait_for(recovered, 30, interval=0.3, what="recovery of the orphaned task run")
    tr.refresh_from_db()
    assert tr.state == State.FAILED
    assert tr.error.startswith(f"worker lost: {w1.worker.name}")
    assert execution.state == State.FAILED
    assert execution.taskruns.get(task_id="on_error").state == State.SUCCESS
    assert Worker.objects.get(pk=w1.worker.pk).state == "dead"
    change = StateChange.objects.get(taskrun=tr, to_state=State.FAILED)
    assert (change.from_state, change.cause, change.actor) == (
        "RUNNING",
        "sweep",
        "liveness",
    )
    assert change.reason == f"worker lost: {w1.worker.name} stopped sending heartbeats"
    ended = StateChange.objects.get(
        execution=execution, taskrun=None, to_state=State.FAILED
    )
    assert (ended.from_state, ended.cause) == ("RUNNING", "executor")
    assert ended.reason == f"task 'nap' failed: {change.reason}"


def test_a_worker_killed_mid_task_is_retried_when_its_policy_allows(
    deploy, start_worker, settings
):
    settings.ORCHESTRA_WORKER_LOST_RESUBMITS = 0  # resubmissions spent
    w1 = start_worker("w1")
    rev = deploy(RETRYING)
    execution = create_execution(rev, actor=Actor.system("test"))
    _wait_running(execution, w1)
    w1.sigkill()
    start_worker("w2")

    def recovered():
        sweep()
        execution.refresh_from_db()
        return execution.is_terminal

    wait_for(recovered, 30, interval=0.3, what="the retried attempt to finish")
    assert execution.state == State.SUCCESS
    attempts = list(
        execution.taskruns.filter(task_id="nap")
        .order_by("attempt")
        .values_list("attempt", "state")
    )
    assert attempts == [(1, "FAILED"), (2, "SUCCESS")]
    lost = StateChange.objects.get(
        taskrun__task_id="nap", taskrun__attempt=1, to_state="FAILED"
    )
    assert (lost.cause, lost.actor) == ("sweep", "liveness")
    assert lost.reason.startswith(f"worker lost: {w1.worker.name}")
    assert execution.taskruns.get(task_id="after").outputs == {"value": "done after 0"}


def test_a_healthy_long_task_is_never_recovered(deploy, celery_worker):
    rev = deploy(SLEEPY.replace("PT30S", "PT4S"))
    execution = create_execution(rev, actor=Actor.system("test"))
    _wait_running(execution, celery_worker)
    # Several liveness timeouts pass while the sweep runs: the worker beats.
    for _ in range(8):
        sweep()
        wait_for(lambda: True, 0.1)
        import time

        time.sleep(0.4)
    assert (
        TaskRun.objects.get(execution=execution, task_id="nap").state == State.RUNNING
    )
    wait_for(lambda: execution.__class__.objects.get(pk=execution.pk).is_terminal, 20)
    execution.refresh_from_db()
    assert execution.state == State.SUCCESS


def test_kill_reaches_the_task_on_its_worker(deploy, celery_worker):
    rev = deploy(SLEEPY)
    execution = create_execution(rev, actor=Actor.system("test"))
    _wait_running(execution, celery_worker)
    kill(execution.pk, reason="test", actor=Actor("user", "alice"))
    wait_for(
        lambda: execution.__class__.objects.get(pk=execution.pk).is_terminal,
        10,
        what="the kill to complete",
    )
    execution.refresh_from_db()
    assert execution.state == State.KILLED
    assert execution.taskruns.get(task_id="nap").state == State.KILLED


def test_a_lost_message_is_sent_again_by_the_sweep(
    deploy, transactional_db, start_worker
):
    from datetime import timedelta

    from django.utils import timezone

    from executions.engine.liveness import redispatch_lost

    rev = deploy(
        "id: lost\nnamespace: tests.worker\ntasks:\n  - id: a\n    type: Return\n    format: x\n"
    )
    # Created but never sent: as if the broker lost the message.
    execution = create_execution(rev, start=False, actor=Actor.system("test"))
    execution.__class__.objects.filter(pk=execution.pk).update(
        progress_at=timezone.now() - timedelta(minutes=5)
    )
    start_worker("w1")
    assert redispatch_lost() == 1
    wait_for(lambda: execution.__class__.objects.get(pk=execution.pk).is_terminal, 20)
    execution.refresh_from_db()
    assert execution.state == State.SUCCESS


def test_a_kill_and_a_claim_at_the_same_moment_do_not_deadlock(
    postgres, transactional_db
):
    """The kill holds the execution's row lock while a worker claims one of
    its task runs: the claim waits for the kill, then sees it, instead of
    locking the task run first and deadlocking with the kill's update of it."""
    import threading
    import time

    from django.db import connection, transaction

    from executions.engine.worker import _claim
    from executions.models import Execution
    from tests.executions.stuck_helpers import make_execution, make_taskrun

    execution = make_execution(State.RUNNING)
    tr = make_taskrun(execution, State.CREATED)
    row = Worker.objects.create(name="w", hostname="h", pid=1, state="alive")
    locked, errors, claimed = threading.Event(), [], []

    def kill_holding_the_lock():
        try:
            with transaction.atomic():
                Execution.objects.select_for_update().get(pk=execution.pk)
                locked.set()
                time.sleep(1.0)  # the claim runs meanwhile
                kill(execution.pk, actor=Actor("user", "alice"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    def claim():
        locked.wait()
        try:
            claimed.append(_claim(tr.pk, row.pk))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=kill_holding_the_lock),
        threading.Thread(target=claim),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    assert claimed == [None]
    assert TaskRun.objects.get(pk=tr.pk).state == State.KILLED
    assert Execution.objects.get(pk=execution.pk).state == State.KILLED
