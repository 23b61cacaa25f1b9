"""A running execution past its SLA is reported (and acted on) while it runs:
the real engine in this process, the real sweep, a real SMTP server."""

import time

from executions.engine.inprocess import use_in_process
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import Cause, State, StateChange
from sla import sweep
from sla.models import Behavior, SlaMiss
from tests.conftest import wait_for
from tests.sla.flows import NIGHTLY

FLOW = """id: slow
namespace: company.data
inputs:
  - id: SLA
    type: DURATION
    defaults: PT0.5S
tasks:
  - id: work
    type: Sleep
    duration: PT20S
"""


def test_a_running_execution_past_its_sla_is_reported_before_it_ends(
    transactional_db, deploy, rule, smtp
):
    rule(
        name="on call",
        namespace="company",
        recipients="oncall@example.com",
        on_breach=Behavior.CANCEL,
    )
    revision = deploy(FLOW)
    with use_in_process() as runner:
        execution = create_execution(revision, actor=Actor.system("test"))
        wait_for(
            lambda: execution.taskruns.filter(state=State.RUNNING).exists(),
            what="the task to start",
        )
        time.sleep(0.6)
        result = sweep.run()
        assert result.misses == 1 and result.emails_sent == 1

        miss = SlaMiss.objects.get()
        assert miss.execution_state == State.RUNNING
        # The rule's CANCEL ran before the email was written: it says both.
        text = smtp.messages[0].get_body(("plain",)).get_content()
        # (The cancel may still be stopping the task when the email is written.)
        assert (
            "so far, still KILLING" in text
            or "when seen (RUNNING then), ended CANCELLED" in text
        ), text
        assert miss.key == "input"  # the flow's SLA input overrides the rule's duration

        # The rule's action stops the 20 s sleep now, not after it.
        wait_for(
            lambda: (execution.refresh_from_db(), execution.is_terminal)[1],
            what="the execution to be cancelled",
        )
        wait_for(runner.idle, what="the engine to settle")
    assert execution.state == State.CANCELLED
    assert execution.duration().total_seconds() < 10
    stop = StateChange.objects.filter(
        execution=execution, taskrun=None, cause=Cause.SLA
    ).first()
    assert stop is not None and "SLA breached (SLA/SLO input)" in stop.reason


def test_two_sweeps_at_once_record_each_miss_once_and_send_one_email(
    transactional_db, deploy, rule, started, smtp
):
    import threading
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from sla.models import Digest

    rule(namespace="company", sla="1h", recipients="oncall@example.com")
    revision = deploy(NIGHTLY)
    for _ in range(40):
        started(revision)
    now = timezone.now() + timedelta(hours=2)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def sweep_once():
        try:
            barrier.wait()
            results.append(sweep.run(now=now))
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    # Either the second sweep waited its turn (SQLite) or it stood aside (PostgreSQL).
    assert sum(r.misses for r in results) == 40
    assert SlaMiss.objects.count() == 40
    assert sum(r.emails_sent for r in results) == 1 and len(smtp.messages) == 1
    assert Digest.objects.count() == 1
    assert set(SlaMiss.objects.values_list("digest", flat=True)) == {
        Digest.objects.get().pk
    }
