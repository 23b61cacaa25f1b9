"""Schedule triggers: cron dates fire once each, across restarts and schedulers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from executions.lifecycle.actor import Actor
from executions.models import Cause, Execution, State, Trigger, TriggerEvent
from executions.triggers.schedule import backfill, evaluate_schedules
from flows.models import save_flow
from orchestra.cli import main as cli

FLOW = """
id: report
namespace: tests.sched
inputs:
  - id: day
    type: STRING
tasks:
  - id: r
    type: Return
    format: "{{{{ inputs.day }}}} {{{{ trigger.date }}}}"
triggers:
  - id: every5
    type: Schedule
    cron: "{cron}"
    inputs:
      day: "{{{{ trigger.date | date('yyyy-MM-dd HH:mm') }}}}"
    labels:
      - key: source
        value: cron
{extra}
"""


def deploy(cron: str = "*/5 * * * *", extra: str = "") -> Trigger:
    save_flow(FLOW.format(cron=cron, extra=extra), actor="test")
    return Trigger.objects.get(flow_id="report", trigger_id="every5")


def fired_dates() -> list[datetime]:
    return sorted(
        TriggerEvent.objects.filter(flow_id="report", status="fired").values_list(
            "scheduled_at", flat=True
        )
    )


def test_it_fires_each_due_date_exactly_once(db):
    trigger = deploy()
    t0 = trigger.next_date
    assert t0 > datetime.now(UTC) - timedelta(seconds=1) and t0.minute % 5 == 0
    assert evaluate_schedules(now=t0 - timedelta(seconds=1)).fired == []
    first = evaluate_schedules(now=t0)
    assert len(first.fired) == 1
    assert evaluate_schedules(now=t0).fired == []
    assert evaluate_schedules(now=t0 + timedelta(minutes=4)).fired == []
    assert len(evaluate_schedules(now=t0 + timedelta(minutes=5, seconds=2)).fired) == 1
    assert fired_dates() == [t0, t0 + timedelta(minutes=5)]
    execution = Execution.objects.get(pk=first.fired[0])
    assert execution.trigger["id"] == "every5"
    assert execution.trigger["type"] == "io.kestra.plugin.core.trigger.Schedule"
    variables = execution.trigger["variables"]
    assert variables["date"] == t0.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert variables["next"] == (t0 + timedelta(minutes=5)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert variables["previous"] == (t0 - timedelta(minutes=5)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert execution.inputs == {"day": t0.strftime("%Y-%m-%d %H:%M")}
    assert execution.labels["source"] == "cron"
    change = execution.history.get()
    assert (change.cause, change.actor) == ("trigger", "schedule:every5")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("ALL", list(range(0, 65, 5))),  # every missed date, in order, no gap
        ("LAST", [60]),  # one run for the whole gap: the latest date
        ("NONE", []),  # none: the 60-minute date was reached 20 s late, in the gap
    ],
)
def test_a_restarted_scheduler_recovers_missed_dates_per_policy(db, policy, expected):
    trigger = deploy(extra=f"    recoverMissedSchedules: {policy}\n")
    t0 = trigger.next_date
    assert len(evaluate_schedules(now=t0).fired) == 1
    # The scheduler stops for an hour, then evaluates again 80 s after t0+60min.
    later = evaluate_schedules(now=t0 + timedelta(minutes=60, seconds=80))
    dates = fired_dates()
    assert dates == sorted(set(dates))  # never twice
    assert [int((d - t0).total_seconds() // 60) for d in dates] == [0] + [
        m for m in expected if m
    ]
    assert later.skipped == 12 - len([m for m in expected if m])
    # And it keeps going afterwards, from where it is.
    assert Trigger.objects.get(pk=trigger.pk).next_date == t0 + timedelta(minutes=65)


@pytest.mark.parametrize(("policy", "runs"), [("LAST", 1), ("NONE", 0)])
def test_a_short_period_cron_after_an_outage_runs_once_or_never(db, policy, runs):
    """A 10-second cron, a 3-minute outage: the dates of the last minute
    belong to the gap too (they used to count as on time and all fired)."""
    trigger = deploy(
        cron="*/10 * * * * *", extra=f"    recoverMissedSchedules: {policy}\n"
    )
    t0 = trigger.next_date
    assert len(evaluate_schedules(now=t0).fired) == 1
    back = t0 + timedelta(minutes=3, seconds=5)
    later = evaluate_schedules(now=back)
    assert len(later.fired) == runs and later.skipped == 18 - runs
    if runs:
        assert fired_dates()[-1] == t0 + timedelta(minutes=3)
    # Then it keeps its period: the next date fires on time.
    assert len(evaluate_schedules(now=t0 + timedelta(minutes=3, seconds=10)).fired) == 1
    # A gap longer than one pass can read is still one run (LAST) or none.
    far = evaluate_schedules(now=t0 + timedelta(hours=4, seconds=3))
    assert len(far.fired) == runs


def test_none_skips_everything_missed_when_the_restart_is_between_dates(db):
    trigger = deploy(extra="    recoverMissedSchedules: NONE\n")
    t0 = trigger.next_date
    evaluate_schedules(now=t0)
    evaluate_schedules(now=t0 + timedelta(minutes=32))
    assert fired_dates() == [t0]
    assert Trigger.objects.get(pk=trigger.pk).next_date == t0 + timedelta(minutes=35)


def test_late_maximum_delay_skips_dates_reached_too_late(db):
    trigger = deploy(extra="    lateMaximumDelay: PT2M\n")
    t0 = trigger.next_date
    evaluate_schedules(now=t0 + timedelta(minutes=3))
    assert fired_dates() == []
    evaluate_schedules(now=t0 + timedelta(minutes=5, seconds=30))
    assert fired_dates() == [t0 + timedelta(minutes=5)]


def test_disabled_triggers_and_flows_never_fire(db):
    trigger = deploy(extra="    disabled: true\n")
    assert trigger.disabled
    evaluate_schedules(now=trigger.next_date + timedelta(hours=1))
    assert fired_dates() == []
    # Switched on again: it starts from now, not from the dates it was off.
    trigger = deploy()
    assert not trigger.disabled and trigger.next_date > datetime.now(UTC) - timedelta(
        seconds=1
    )
    save_flow(
        FLOW.format(cron="*/5 * * * *", extra="") + "disabled: true\n", actor="test"
    )
    evaluate_schedules(now=trigger.next_date + timedelta(minutes=1))
    assert fired_dates() == []


def test_six_field_cron_has_seconds_first_and_timezones_apply(db):
    trigger = deploy(cron="*/10 * * * * *")
    assert trigger.next_date.second % 10 == 0 and trigger.cron == "* * * * * */10"
    t0 = trigger.next_date
    assert len(evaluate_schedules(now=t0 + timedelta(seconds=25)).fired) == 3
    Trigger.objects.filter(pk=trigger.pk).update(disabled=True)
    save_flow(
        FLOW.format(cron="0 9 * * *", extra="    timezone: Europe/Paris\n").replace(
            "id: report", "id: paris"
        ),
        actor="test",
    )
    paris = Trigger.objects.get(flow_id="paris")
    assert paris.next_date.astimezone(UTC).hour in (
        7,
        8,
    )  # 09:00 in Paris (summer/winter)
    result = evaluate_schedules(now=paris.next_date)
    execution = Execution.objects.get(pk=result.fired[-1])
    assert execution.trigger["variables"]["date"].endswith(
        ("T09:00:00+01:00", "T09:00:00+02:00")
    )


def test_a_date_whose_inputs_are_invalid_is_recorded_as_failed(db):
    save_flow(
        FLOW.format(cron="*/5 * * * *", extra="").replace(
            "    type: STRING\n", "    type: INT\n", 1
        ),
        actor="test",
    )
    trigger = Trigger.objects.get(flow_id="report")
    result = evaluate_schedules(now=trigger.next_date)
    assert result.failed == 1 and result.fired == []
    event = TriggerEvent.objects.get(flow_id="report")
    assert event.status == "failed" and "input 'day'" in event.reason
    # The schedule moved on: a broken date never blocks the next ones.
    assert Trigger.objects.get(
        pk=trigger.pk
    ).next_date == trigger.next_date + timedelta(minutes=5)


def test_the_database_rejects_a_second_firing_of_the_same_date(db):
    trigger = deploy()
    t0 = trigger.next_date
    evaluate_schedules(now=t0)
    # A scheduler with a stale view of the trigger tries the same date again.
    Trigger.objects.filter(pk=trigger.pk).update(next_date=t0)
    again = evaluate_schedules(now=t0)
    assert again.fired == [] and again.duplicates == 1
    assert Execution.objects.filter(flow_id="report").count() == 1


def test_two_schedulers_at_once_fire_each_date_once(postgres, transactional_db):
    trigger = deploy()
    t0 = trigger.next_date
    barrier = threading.Barrier(2)
    results = []

    def scheduler():
        try:
            barrier.wait()
            results.append(
                evaluate_schedules(now=t0 + timedelta(minutes=30, seconds=5))
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r.fired) for r in results) == 7
    assert fired_dates() == [t0 + timedelta(minutes=m) for m in range(0, 35, 5)]
    assert Execution.objects.filter(flow_id="report").count() == 7


def test_backfill_fires_each_date_of_a_range_once(db, capsys):
    deploy(cron="0 2 * * *")
    report = backfill(
        "tests.sched",
        "report",
        "every5",
        "2024-01-01",
        "2024-01-03T23:59:59Z",
        actor=Actor(Cause.USER, "alice"),
    )
    assert [d.isoformat() for d in report.dates] == [
        "2024-01-01T02:00:00+00:00",
        "2024-01-02T02:00:00+00:00",
        "2024-01-03T02:00:00+00:00",
    ]
    assert len(report.created) == 3 and report.existing == []
    execution = Execution.objects.get(pk=report.created[0][1])
    assert execution.labels["system.backfill"] == "true"
    assert execution.inputs == {"day": "2024-01-01 02:00"}
    assert execution.history.get().actor == "alice"
    # Again, over a wider range: only the new date starts.
    code = cli(
        [
            "flows",
            "backfill",
            "-n",
            "tests.sched",
            "-f",
            "report",
            "-t",
            "every5",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-04T03:00:00",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "1 started, 3 already fired, 0 failed" in out
    assert "2024-01-04T02:00:00Z: execution" in out
    assert Execution.objects.filter(flow_id="report").count() == 4


def test_a_bare_date_end_includes_that_whole_day(db, capsys):
    """``--end 2024-01-31`` is the last day of the range, not its midnight."""
    deploy(cron="0 2 * * *")
    code = cli(
        [
            "flows",
            "backfill",
            "-n",
            "tests.sched",
            "-f",
            "report",
            "-t",
            "every5",
            "--start",
            "2024-01-29",
            "--end",
            "2024-01-31",
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 dates, 3 would start" in out and "2024-01-31T02:00:00Z" in out
    # A time-of-day end is taken as written; a start later that day still fits.
    report = backfill(
        "tests.sched",
        "report",
        "every5",
        "2024-01-31T01:00",
        "2024-01-31",
        actor=Actor(Cause.USER, "alice"),
        dry_run=True,
    )
    assert [d.isoformat() for d in report.dates] == ["2024-01-31T02:00:00+00:00"]
    until_midnight = backfill(
        "tests.sched",
        "report",
        "every5",
        "2024-01-29",
        "2024-01-31T00:00",
        actor=Actor(Cause.USER, "alice"),
        dry_run=True,
    )
    assert len(until_midnight.dates) == 2


def test_backfill_errors_name_the_problem_and_change_nothing(db, capsys):
    deploy()
    code = cli(
        [
            "flows",
            "backfill",
            "-n",
            "tests.sched",
            "-f",
            "report",
            "-t",
            "nope",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
        ]
    )
    assert code == 1
    assert (
        "has no Schedule trigger 'nope' (its schedules: every5)"
        in capsys.readouterr().err
    )
    code = cli(
        [
            "flows",
            "backfill",
            "-n",
            "tests.sched",
            "-f",
            "report",
            "-t",
            "every5",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-01",
        ]
    )
    assert code == 1 and "is before its start" in capsys.readouterr().err
    code = cli(
        [
            "flows",
            "backfill",
            "-n",
            "tests.sched",
            "-f",
            "report",
            "-t",
            "every5",
            "--start",
            "yesterday",
            "--end",
            "2024-01-01",
        ]
    )
    assert (
        code == 1 and "'yesterday' is not an ISO-8601 date" in capsys.readouterr().err
    )
    code = cli(
        [
            "flows",
            "backfill",
            "-n",
            "tests.sched",
            "-f",
            "report",
            "-t",
            "every5",
            "--start",
            "2024-01-01T00:00",
            "--end",
            "2024-01-01T00:20",
            "--dry-run",
        ]
    )
    assert code == 0 and "5 dates, 5 would start" in capsys.readouterr().out
    assert Execution.objects.count() == 0


def test_a_scheduled_run_sees_trigger_date_in_its_tasks(transactional_db):
    from executions.engine.inprocess import use_in_process
    from tests.conftest import wait_for

    trigger = deploy()
    with use_in_process():
        result = evaluate_schedules(now=trigger.next_date)
        execution = wait_for(
            lambda: Execution.objects.filter(
                pk=result.fired[0], state=State.SUCCESS
            ).first(),
            20,
            what="scheduled run",
        )
    value = execution.taskruns.get().outputs["value"]
    assert value == (
        f"{trigger.next_date:%Y-%m-%d %H:%M} {trigger.next_date:%Y-%m-%dT%H:%M:%SZ}"
    )


def test_beat_schedules_the_evaluation_and_the_task_runs_it(db, settings):
    from executions.tasks import evaluate_schedules as task

    entry = settings.CELERY_BEAT_SCHEDULE["evaluate-schedules"]
    assert entry["task"] == "orchestra.evaluate_schedules"
    assert "liveness-sweep" in settings.CELERY_BEAT_SCHEDULE
    now = datetime.now(UTC)
    last_cron_date = now.replace(
        minute=now.minute - now.minute % 5, second=0, microsecond=0
    )
    Trigger.objects.filter(pk=deploy().pk).update(next_date=last_cron_date)
    assert task()["fired"] == 1


def test_trigger_yaml_errors_name_the_path(db):
    from flows.spec import FlowInvalid, parse_flow

    base = "id: x\nnamespace: t\ntasks:\n  - id: a\n    type: Log\n    message: m\ntriggers:\n"
    cases = {
        "  - id: t\n    type: Flow\n    conditions:\n      - type: DayWeek\n": "unknown condition type 'DayWeek'. Usable here: ExecutionFlow, ExecutionLabels",
        "  - id: t\n    type: Schedule\n    cron: '* * * * *'\n    conditions:\n"
        "      - type: ExecutionStatus\n        in: [SUCCESS]\n": "ExecutionStatus does not apply to a schedule trigger",
        "  - id: t\n    type: Flow\n    states: [DONE]\n": "unknown end state 'DONE'",
        "  - id: t\n    type: Flow\n    preconditions:\n      flows:\n        - namespace: a\n"
        "        - namespace: b\n": "preconditions with several flows",
        "  - id: t\n    type: Schedule\n    cron: '61 * * * *'\n": "invalid cron expression",
        "  - id: t\n    type: Schedule\n    cron: '* * *'\n": "has 3 fields",
        "  - id: t\n    type: Schedule\n    cron: '@daily'\n    recoverMissedSchedules: SOME\n": "must be ALL, LAST or NONE",
        "  - id: t\n    type: Flow\n    conditions:\n      - type: ExecutionLabels\n"
        "        label: {a: b}\n": "unknown ExecutionLabels condition property 'label'; did you mean 'labels'?",
    }
    for trigger, message in cases.items():
        with pytest.raises(FlowInvalid) as info:
            parse_flow(base + trigger)
        assert message in str(info.value), (trigger, str(info.value))
    # Kestra's example spelling with namespace, flowId and states is accepted.
    spec = parse_flow(
        base + "  - id: t\n    type: io.kestra.plugin.core.trigger.Flow\n"
        "    conditions:\n      - type: io.kestra.plugin.core.condition.Execution\n"
        "        namespace: sales\n        flowId: data-extraction\n"
        "        states:\n          - SUCCESS\n"
    )
    assert spec.triggers[0]["conditions"][0]["kind"] == "ExecutionFlow"


def test_the_cli_lists_triggers_with_their_next_date(db, capsys):
    trigger = deploy()
    assert cli(["flows", "triggers", "--namespace", "tests"]) == 0
    out = capsys.readouterr().out
    assert "tests.sched  report  every5   schedule" in out
    assert f"{trigger.next_date:%Y-%m-%dT%H:%M:%SZ}" in out
    assert cli(["flows", "triggers", "--namespace", "tests.s"]) == 0
    assert capsys.readouterr().out == "No triggers.\n"
