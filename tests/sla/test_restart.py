"""A restarted execution is judged again, measured from the restart: each
attempt that breaches is one miss, never two (sla/deadlines.py)."""

import time
from datetime import timedelta

from django.utils import timezone

from executions.engine.inprocess import use_in_process
from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.lifecycle.restart import restart
from executions.models import Cause, State
from sla import sweep
from sla.models import Behavior, Deadline, DeadlineState, SlaMiss
from tests.conftest import wait_for
from tests.sla.flows import NIGHTLY

FLAKY = """id: flaky
namespace: company.data
inputs:
  - id: SLA
    type: DURATION
    defaults: PT0.5S
tasks:
  - id: work
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 1
      - exit 1
"""


def _restart(execution):
    with use_in_process() as runner:
        restart(execution.pk, actor=Actor(Cause.USER, "alice"))
        wait_for(
            lambda: (
                (execution.refresh_from_db(), execution.is_terminal)[1]
                and runner.idle()
            ),
            what="the restarted execution to end",
        )
        assert not runner.errors, runner.errors
    return execution


def test_a_restarted_run_that_breaches_again_is_a_new_miss_measured_from_the_restart(
    deploy, rule, run_inprocess, smtp
):
    rule(name="on call", namespace="company", recipients="oncall@example.com")
    execution = run_inprocess(deploy(FLAKY))  # 1 s against an SLA of 0.5 s
    assert execution.state == State.FAILED
    first = sweep.run()
    assert first.misses == 1 and first.emails_sent == 1

    time.sleep(0.5)  # the restart is not charged for this pause
    restarted_at = timezone.now()
    _restart(execution)
    assert execution.state == State.FAILED and execution.attempt == 2

    second = sweep.run()
    assert second.misses == 1
    late, again = SlaMiss.objects.filter(execution=execution).order_by("attempt")
    assert (late.attempt, again.attempt) == (1, 2)
    assert again.started_at >= restarted_at
    assert again.duration <= execution.ended_at - restarted_at
    # The rule alerted a moment ago: the second breach waits for the reminder.
    assert second.emails_sent == 0 and len(smtp.messages) == 1

    assert sweep.run().misses == 0
    assert SlaMiss.objects.count() == 2
    assert set(Deadline.objects.values_list("attempt", "state")) == {
        (1, DeadlineState.MISSED),
        (2, DeadlineState.MISSED),
    }


def test_a_restart_is_not_late_because_the_first_attempt_started_long_ago(
    deploy, rule, started
):
    rule(namespace="company", sla="1h")
    execution = started(deploy(NIGHTLY))
    two_hours_later = timezone.now() + timedelta(hours=2)
    machine.transition(execution, State.FAILED, actor=Actor(Cause.WORKER, ""))
    machine.transition(
        execution, State.RESTARTED, fields={"attempt": 2}, actor=Actor(Cause.USER, "")
    )

    restart = Deadline.objects.get(execution=execution, attempt=2)
    assert restart.state == DeadlineState.OPEN
    assert restart.due_at == execution.progress_at + timedelta(hours=1)
    # The first attempt ended in time; the restart has an hour of its own.
    assert sweep.run(now=timezone.now() + timedelta(minutes=59)).misses == 0
    assert sweep.run(now=two_hours_later).misses == 1
    assert SlaMiss.objects.get().attempt == 2


def test_a_late_attempt_swept_after_a_restart_does_not_stop_the_new_one(
    deploy, rule, started
):
    rule(namespace="company", sla="1h", on_breach=Behavior.CANCEL)
    execution = started(deploy(NIGHTLY))
    # The first attempt ran late and failed before a sweep saw it ...
    Deadline.objects.filter(execution=execution).update(
        due_at=timezone.now() - timedelta(minutes=5)
    )
    machine.transition(execution, State.FAILED, actor=Actor(Cause.WORKER, ""))
    # ... and was restarted at once.
    machine.transition(
        execution, State.RESTARTED, fields={"attempt": 2}, actor=Actor(Cause.USER, "")
    )
    machine.transition(execution, State.RUNNING, actor=Actor(Cause.EXECUTOR, ""))

    assert sweep.run().misses == 1
    miss = SlaMiss.objects.get()
    assert miss.attempt == 1
    assert "not cancelled: the execution was restarted since (attempt 2)" in miss.action
    execution.refresh_from_db()
    assert execution.state == State.RUNNING
