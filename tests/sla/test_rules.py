"""Which rule applies, and which thresholds an execution gets."""

from datetime import timedelta
from pathlib import Path

import pytest

from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from sla.models import Behavior, Deadline, Level
from sla.rules import applying_rule

FLOW = """id: nightly
namespace: company.data.etl
labels:
  env: prod
tasks:
  - id: hello
    type: Log
    message: hi
"""


@pytest.mark.django_db
def test_the_most_specific_rule_wins(rule):
    parent = rule(name="company", namespace="company", sla="2h")
    child = rule(name="data", namespace="company.data", sla="1h")
    assert applying_rule("company.data.etl", "nightly") == child
    flow_rule = rule(name="flow", namespace="company", flow_id="nightly", sla="30m")
    assert applying_rule("company.data.etl", "nightly") == flow_rule
    # Another flow of the namespace keeps the namespace rule.
    assert applying_rule("company.data.etl", "other") == child
    assert applying_rule("company.sales", "x") == parent
    # "companyX" is not a child of "company".
    assert applying_rule("companyX.data", "nightly") is None


@pytest.mark.django_db
def test_label_selectors_and_disabled_rules(rule):
    plain = rule(name="plain", namespace="company", sla="2h")
    prod = rule(name="prod", namespace="company", labels={"env": "prod"}, sla="1h")
    assert applying_rule("company.a", "f", {"env": "prod", "team": "x"}) == prod
    assert applying_rule("company.a", "f", {"env": "uat"}) == plain
    prod.enabled = False
    prod.save()
    assert applying_rule("company.a", "f", {"env": "prod"}) == plain


@pytest.mark.django_db
def test_deadlines_are_stored_at_creation_and_due_when_started(deploy, rule, started):

    r = rule(
        namespace="company.data",
        slo="45m",
        sla="1h",
        on_breach=Behavior.CANCEL,
        add_labels={"sla": "breached"},
    )
    revision = deploy(FLOW)
    created = create_execution(revision, start=False, actor=Actor.system("test"))
    rows = {d.level: d for d in Deadline.objects.filter(execution=created)}
    assert set(rows) == {Level.SLO, Level.SLA}
    assert rows[Level.SLA].due_at is None  # not started yet
    assert rows[Level.SLA].rule == r and rows[Level.SLA].behavior == Behavior.CANCEL

    execution = started(revision)
    rows = {d.level: d for d in Deadline.objects.filter(execution=execution)}
    assert rows[Level.SLO].due_at == execution.started_at + timedelta(minutes=45)
    assert rows[Level.SLA].due_at == execution.started_at + timedelta(hours=1)
    assert rows[Level.SLO].behavior == Behavior.NONE  # warnings never act


SLA_FLOW_WITH_LIST = (
    Path(__file__).resolve().parents[2] / "examples/flows/sla_flow.yml"
).read_text() + (
    "sla:\n  - id: too-long\n    type: MAX_DURATION\n    duration: PT2H\n    behavior: FAIL\n"
    "    labels:\n      sla: missed\n"
)


@pytest.mark.django_db
def test_sla_slo_inputs_and_the_flow_sla_list_give_thresholds(deploy, started):
    execution = started(deploy(SLA_FLOW_WITH_LIST), inputs={"SLA": "30m"})
    rows = {(d.key, d.level): d for d in Deadline.objects.filter(execution=execution)}
    assert rows[("input", Level.SLA)].threshold == timedelta(minutes=30)
    assert rows[("input", Level.SLO)].threshold == timedelta(minutes=45)
    flow_sla = rows[("flow:too-long", Level.SLA)]
    assert flow_sla.threshold == timedelta(hours=2)
    assert flow_sla.behavior == Behavior.FAIL and flow_sla.labels == {"sla": "missed"}
    assert len(rows) == 3


@pytest.mark.django_db
def test_an_execution_that_ends_in_time_closes_its_deadlines(deploy, rule, started):
    from executions.models import Cause, State
    from sla.models import DeadlineState

    rule(namespace="company", sla="1h")
    execution = started(deploy(FLOW))
    machine.transition(execution, State.SUCCESS, actor=Actor(Cause.EXECUTOR, ""))
    assert list(
        Deadline.objects.filter(execution=execution).values_list("state", flat=True)
    ) == [DeadlineState.MET]


@pytest.mark.django_db
def test_a_rule_that_only_expects_runs_does_not_hide_the_namespace_thresholds(rule):
    durations = rule(name="etl", namespace="company", sla="1h")
    rule(
        name="daily",
        namespace="company.data.etl",
        flow_id="nightly",
        expected_runs=1,
        expected_cron="0 10 * * *",
    )
    assert applying_rule("company.data.etl", "nightly") == durations
