"""The sweep: misses recorded once, breach actions through executions.lifecycle,
missed runs, and the batched email through a real SMTP server."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import Cause, Execution, State, StateChange
from sla import sweep
from sla.models import (
    Behavior,
    Deadline,
    DeadlineState,
    Digest,
    DigestState,
    Level,
    PendingAlert,
    SlaMiss,
)
from tests.sla.flows import NIGHTLY


def later(**delta) -> datetime:
    return timezone.now() + timedelta(**delta)


@pytest.mark.django_db
def test_fifty_breaches_give_one_email_listing_all_and_a_second_sweep_sends_nothing(
    deploy, rule, started, smtp
):
    rule(
        name="etl within an hour",
        namespace="company",
        sla="1h",
        recipients="oncall@example.com, Data@example.com",
    )
    revision = deploy(NIGHTLY)
    executions = [started(revision) for _ in range(50)]

    result = sweep.run(now=later(hours=1, minutes=1))

    assert result.misses == 50 and result.emails_sent == 1
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert sorted(message.envelope_rcpt) == ["data@example.com", "oncall@example.com"]
    assert message["Subject"] == "[Orchestra] 50 SLA breaches in company.data"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for execution in executions:
        link = f"https://orchestra.example.com/executions/{execution.pk}/"
        assert link in text and f'href="{link}"' in html
    assert "threshold: 1h 00m (rule 'etl within an hour')" in text
    assert "so far, RUNNING when detected" in text
    assert "state now: RUNNING" in text

    again = sweep.run(now=later(hours=1, minutes=2))
    assert again.misses == 0 and again.emails_sent == 0
    assert len(smtp.messages) == 1
    assert SlaMiss.objects.count() == 50
    digest = Digest.objects.get()
    assert digest.state == DigestState.SENT
    # Every miss is in that email, and nothing is left waiting for one.
    assert set(SlaMiss.objects.values_list("digest", flat=True)) == {digest.pk}
    assert not PendingAlert.objects.exists()


@pytest.mark.django_db
def test_an_smtp_outage_loses_nothing_and_duplicates_nothing(
    deploy, rule, started, smtp, settings
):
    settings.ORCHESTRA_SLA_RETRY_MAX_SECONDS = 1  # backoff capped at 1 s
    rule(namespace="company", sla="10m", recipients="oncall@example.com")
    revision = deploy(NIGHTLY)
    for _ in range(3):
        started(revision)
    smtp.stop()

    down = sweep.run(now=later(minutes=11))
    assert down.misses == 3 and down.emails_sent == 0 and down.emails_failed == 1
    digest = Digest.objects.get()
    assert (
        digest.state == DigestState.PENDING
        and "Connection refused" in digest.last_error
    )

    # A sweep within the backoff does not try again.
    assert sweep.run(now=later(minutes=11)).emails_failed == 0
    # Still down after it: retried, still nothing lost.
    time.sleep(1.1)
    assert sweep.run(now=later(minutes=12)).emails_failed == 1

    smtp.start()
    time.sleep(1.1)
    back = sweep.run(now=later(minutes=13))
    assert back.emails_sent == 1
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Message-ID"] == digest.message_id
    assert smtp.messages[0]["Subject"] == "[Orchestra] 3 SLA breaches in company.data"
    assert sweep.run(now=later(minutes=14)).emails_sent == 0
    assert len(smtp.messages) == 1
    assert Digest.objects.get().attempts == 3


@pytest.mark.django_db
def test_a_server_refusing_the_message_is_retried(
    deploy, rule, started, smtp, settings
):
    settings.ORCHESTRA_SLA_RETRY_MAX_SECONDS = 1
    rule(namespace="company", sla="10m", recipients="oncall@example.com")
    started(deploy(NIGHTLY))
    smtp.inbox.refuse = True
    assert sweep.run(now=later(minutes=11)).emails_failed == 1
    assert Digest.objects.get().state == DigestState.PENDING
    smtp.inbox.refuse = False
    time.sleep(1.1)  # the backoff
    assert sweep.run(now=later(minutes=12)).emails_sent == 1
    assert len(smtp.messages) == 1


@pytest.mark.django_db
def test_a_digest_left_sending_by_a_crash_is_resent_with_the_same_message_id(
    deploy, rule, started, smtp, settings
):
    from sla import digest as digest_module

    rule(namespace="company", sla="10m", recipients="oncall@example.com")
    started(deploy(NIGHTLY))
    now = later(minutes=11)
    sweep.run(now=now, send=False)
    assert digest_module.build_digests(now) == 1
    # A sweep claimed it and died before marking it sent.
    claimed = timezone.now() - timedelta(seconds=30)
    Digest.objects.update(state=DigestState.SENDING, claimed_at=claimed)
    assert digest_module.send_pending() == (
        0,
        0,
    )  # it may still be talking to the server
    lease = timedelta(seconds=settings.ORCHESTRA_SLA_SENDING_LEASE_SECONDS + 1)
    Digest.objects.update(claimed_at=timezone.now() - lease)
    assert digest_module.send_pending() == (1, 0)
    assert smtp.messages[0]["Message-ID"] == Digest.objects.get().message_id


@pytest.mark.django_db
def test_a_rule_that_keeps_missing_is_damped_into_one_reminder(
    deploy, rule, started, smtp, settings
):
    settings.ORCHESTRA_SLA_REMINDER_MINUTES = 30
    rule(name="fast", namespace="company", sla="5m", recipients="oncall@example.com")
    revision = deploy(NIGHTLY)
    started(revision)
    t0 = later(minutes=6)
    assert sweep.run(now=t0).emails_sent == 1

    # More breaches every few minutes: held, not one email each.
    for minute in (5, 10, 15):
        started(revision)
        assert sweep.run(now=t0 + timedelta(minutes=minute + 6)).emails_sent == 0
    assert len(smtp.messages) == 1

    reminder = sweep.run(now=t0 + timedelta(minutes=31))
    assert reminder.emails_sent == 1
    assert (
        smtp.messages[1]["Subject"]
        == "[Orchestra] 3 SLA breaches in company.data (reminder)"
    )
    assert (
        "Reminder: fast kept missing"
        in smtp.messages[1].get_body(("plain",)).get_content()
    )


@pytest.mark.django_db
def test_slo_and_sla_are_separate_misses_and_warnings_take_no_action(
    deploy, rule, started, smtp
):
    rule(
        namespace="company",
        slo="45m",
        sla="1h",
        on_breach=Behavior.CANCEL,
        recipients="oncall@example.com",
    )
    execution = started(deploy(NIGHTLY))

    assert sweep.run(now=later(minutes=50)).misses == 1
    execution.refresh_from_db()
    assert execution.state == State.RUNNING
    assert SlaMiss.objects.get().level == Level.SLO
    assert "1 SLO warning" in smtp.messages[0]["Subject"]

    result = sweep.run(now=later(minutes=61))
    assert result.misses == 1 and result.actions == 1 and result.emails_sent == 1
    execution.refresh_from_db()
    assert execution.state == State.CANCELLED
    assert SlaMiss.objects.filter(level=Level.SLA).count() == 1


@pytest.mark.django_db
def test_cancel_and_fail_go_through_actions_with_the_rule_as_cause(
    deploy, rule, started
):
    r = rule(
        name="strict",
        namespace="company",
        sla="1h",
        on_breach=Behavior.FAIL,
        add_labels={"sla": "breached"},
    )
    execution = started(deploy(NIGHTLY))
    sweep.run(now=later(hours=2))
    execution.refresh_from_db()
    assert execution.state == State.FAILED
    assert execution.labels == {
        "sla": "breached",
        "system.correlationId": str(execution.pk),
    }
    change = StateChange.objects.get(execution=execution, to_state=State.FAILED)
    assert change.cause == Cause.SLA and change.actor == f"sla-rule:{r.pk}"
    assert "SLA breached (rule 'strict')" in change.reason
    assert change.details["sla_rule_id"] == r.pk
    miss = SlaMiss.objects.get()
    assert miss.action == "labels added: sla:breached; failed"


@pytest.mark.django_db
def test_a_late_execution_that_already_ended_is_still_a_miss(deploy, rule, started):
    rule(namespace="company", sla="1h", on_breach=Behavior.CANCEL)
    execution = started(deploy(NIGHTLY))
    Execution.objects.filter(pk=execution.pk).update(
        started_at=execution.started_at - timedelta(hours=2)
    )
    Deadline.objects.filter(execution=execution).update(
        due_at=execution.started_at - timedelta(hours=1)
    )
    execution.refresh_from_db()
    machine.transition(execution, State.SUCCESS, actor=Actor(Cause.EXECUTOR, ""))
    assert (
        Deadline.objects.get().state == DeadlineState.OPEN
    )  # late: left for the sweep

    sweep.run()
    miss = SlaMiss.objects.get()
    assert miss.duration >= timedelta(hours=2)
    assert miss.execution_state == State.SUCCESS
    assert miss.action == "not cancelled: the execution had already ended (SUCCESS)"


@pytest.mark.django_db
def test_concurrent_or_repeated_sweeps_record_one_miss(deploy, rule, started):
    rule(namespace="company", sla="1h")
    execution = started(deploy(NIGHTLY))
    now = later(hours=2)
    sweep.run(now=now, send=False)
    # Same deadline seen again (e.g. a second sweep that read it before the first closed it).
    Deadline.objects.update(state=DeadlineState.OPEN)
    sweep.run(now=now, send=False)
    assert SlaMiss.objects.filter(execution=execution).count() == 1


@pytest.mark.django_db
def test_a_missed_daily_run_is_reported(deploy, rule, smtp):

    created = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    r = rule(
        name="daily load",
        namespace="company",
        flow_id="nightly",
        expected_runs=1,
        expected_cron="0 10 * * *",
        recipients="oncall@example.com",
        created_at=created,
    )
    revision = deploy(NIGHTLY)
    # 2 March: one successful run. 3 March: none. 4 March: one that failed.
    ok = create_execution(revision, start=False, actor=Actor.system("test"))
    Execution.objects.filter(pk=ok.pk).update(
        state=State.SUCCESS, created_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    )
    bad = create_execution(revision, start=False, actor=Actor.system("test"))
    Execution.objects.filter(pk=bad.pk).update(
        state=State.FAILED, created_at=datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    )

    result = sweep.run(now=datetime(2026, 3, 4, 10, 0, 30, tzinfo=UTC))
    # Windows: (1 Mar 10:00, 2 Mar 10:00] ok; (2 Mar, 3 Mar] none; (3 Mar, 4 Mar] failed only.
    assert result.expected_misses == 2
    misses = list(SlaMiss.objects.order_by("window_end"))
    assert [m.window_end.day for m in misses] == [3, 4]
    assert all(
        m.execution_id is None and m.actual == 0 and m.expected == 1 for m in misses
    )
    text = smtp.messages[0].get_body(("plain",)).get_content()
    assert "expected:  at least 1 successful run(s), got 0" in text
    # Checked windows are not checked again.
    assert sweep.run(now=datetime(2026, 3, 4, 11, 0, tzinfo=UTC)).expected_misses == 0
    r.refresh_from_db()
    assert r.expected_checked_until == datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_the_management_command_runs_the_sweep(deploy, rule, started, capsys):
    rule(namespace="company", sla="1s")
    execution = started(deploy(NIGHTLY))
    Deadline.objects.update(due_at=timezone.now() - timedelta(seconds=1))
    call_command("sla_check", "--no-email")
    assert "1 duration miss(es)" in capsys.readouterr().out
    assert SlaMiss.objects.get().execution == execution


ASSERTING_FLOW = """id: asserting
namespace: company.data
inputs:
  - id: rows
    type: INT
    defaults: 0
sla:
  - id: has-rows
    type: EXECUTION_ASSERTION
    assert: "{{ inputs.rows > 0 }}"
    behavior: NONE
    labels:
      sla: no-rows
tasks:
  - id: hello
    type: Log
    message: hi
"""


@pytest.mark.django_db
def test_an_execution_assertion_is_checked_when_the_execution_ends(deploy, started):
    revision = deploy(ASSERTING_FLOW)
    empty = started(revision)
    full = started(revision, inputs={"rows": 5})
    assert sweep.run().assertion_misses == 0  # nothing is judged before the end
    for execution in (empty, full):
        machine.transition(execution, State.SUCCESS, actor=Actor(Cause.EXECUTOR, ""))

    assert sweep.run().assertion_misses == 1
    miss = SlaMiss.objects.get()
    assert miss.execution == empty and miss.key == "flow:has-rows"
    empty.refresh_from_db()
    assert empty.labels == {"sla": "no-rows", "system.correlationId": str(empty.pk)}
    assert Deadline.objects.get(execution=full).state == DeadlineState.MET


@pytest.mark.django_db
def test_disabling_or_deleting_a_rule_stops_its_open_deadlines(deploy, rule, started):
    r = rule(namespace="company", sla="1h", on_breach=Behavior.CANCEL)
    first = started(deploy(NIGHTLY))
    r.enabled = False
    r.save()
    assert sweep.run(now=later(hours=2)).misses == 0
    first.refresh_from_db()
    assert first.state == State.RUNNING

    other = rule(namespace="company.data", sla="1h", on_breach=Behavior.CANCEL)
    third = started(deploy(NIGHTLY))
    assert Deadline.objects.get(execution=third).rule == other
    other.delete()
    assert sweep.run(now=later(hours=2)).misses == 0
    assert not SlaMiss.objects.exists()


@pytest.mark.django_db
def test_a_flow_sla_max_duration_acts_without_any_rule(deploy, started, smtp):
    flow = NIGHTLY + (
        "sla:\n  - id: too-long\n    type: MAX_DURATION\n    duration: PT30M\n"
        "    behavior: CANCEL\n    labels:\n      sla: missed\n"
    )
    execution = started(deploy(flow))
    result = sweep.run(now=later(minutes=31))
    assert result.misses == 1 and result.actions == 1 and result.emails_sent == 0
    execution.refresh_from_db()
    assert execution.state == State.CANCELLED
    assert execution.labels == {
        "sla": "missed",
        "system.correlationId": str(execution.pk),
    }
    change = StateChange.objects.get(execution=execution, to_state=State.CANCELLED)
    assert change.cause == Cause.SLA and change.actor == "sla:flow:too-long"
    assert "SLA breached (flow sla 'too-long'): ran 31m" in change.reason
    assert SlaMiss.objects.get().recipients == ""  # no rule, nobody to email


@pytest.mark.django_db
def test_misses_found_during_an_outage_arrive_as_one_email_per_recipient(
    deploy, rule, started, smtp, settings
):
    """Several sweeps during an SMTP outage, each finding new misses: when the
    server is back each recipient gets exactly one email listing all of its
    misses, not one per sweep of the outage."""
    settings.ORCHESTRA_SLA_RETRY_MAX_SECONDS = 1
    teams = [f"company.t{i}" for i in range(5)]
    revisions = {}
    for team in teams:
        rule(namespace=team, sla="1h", recipients=f"{team[-2:]}@example.com")
        revisions[team] = deploy(NIGHTLY.replace("company.data", team))
    smtp.stop()
    for wave in range(3):
        for team in teams:
            for _ in range(10):
                started(revisions[team])
        down = sweep.run(now=later(hours=1, minutes=1 + wave))
        assert down.misses == 50 and down.emails_sent == 0
    assert Digest.objects.count() == 5  # one waiting per recipient, merged

    smtp.start()
    time.sleep(1.1)  # past the backoff
    back = sweep.run(now=later(hours=1, minutes=5))
    assert back.emails_sent == 5 and len(smtp.messages) == 5
    by_recipient = {tuple(m.envelope_rcpt): m for m in smtp.messages}
    assert sorted(by_recipient) == sorted((f"t{i}@example.com",) for i in range(5))
    for message in smtp.messages:
        assert message["Subject"].startswith("[Orchestra] 30 SLA breaches in company.t")
    assert SlaMiss.objects.filter(digest__state=DigestState.SENT).count() == 150
    assert not PendingAlert.objects.exists()
    assert sweep.run(now=later(hours=1, minutes=6)).emails_sent == 0
    assert len(smtp.messages) == 5
