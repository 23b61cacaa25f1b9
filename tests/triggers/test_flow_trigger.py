"""Flow triggers: a flow starts when other executions end."""

from __future__ import annotations

import pytest

from executions.engine.inprocess import use_in_process
from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import Cause, Execution, LogEntry, State, TriggerEvent
from executions.triggers.flow import on_execution_end, process_pending
from flows.models import save_flow
from flows.namespaces import set_allowed_namespaces
from tests.conftest import wait_for


@pytest.fixture(autouse=True)
def _sales_shares_with_the_company(request):
    """company.warehouse listens to company.sales, a sibling: sales allows
    the whole company (tests/security/test_namespace_isolation.py checks the
    refusal without it)."""
    for name in ("transactional_db", "db"):
        if name in request.fixturenames:
            request.getfixturevalue(name)
            break
    else:
        return
    set_allowed_namespaces(
        "company.sales", ["company"], actor="test", via="cli", reason="tests"
    )


UPSTREAM = """
id: extract
namespace: company.sales
labels:
  team: sales
inputs:
  - id: fail
    type: BOOLEAN
    defaults: false
tasks:
  - id: f
    type: Fail
    condition: "{{ inputs.fail }}"
  - id: rows
    type: Return
    format: "42"
outputs:
  - id: rows
    type: STRING
    value: "{{ outputs.rows.value }}"
"""

DOWNSTREAM = """
id: load
namespace: company.warehouse
tasks:
  - id: got
    type: Return
    format: "{{ trigger.flowId }} #{{ trigger.executionId }} {{ trigger.state }} rows={{ trigger.outputs.rows | default('none') }}"
triggers:
  - id: after_extract
    type: io.kestra.plugin.core.trigger.Flow
{conditions}
"""

ON_SUCCESS = """    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: company.sales
        flowId: extract
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"""


def run_until_idle(revision, **kwargs) -> Execution:
    with use_in_process() as runner:
        execution = create_execution(revision, **kwargs, actor=Actor.system("test"))
        wait_for(
            lambda: (
                Execution.objects.get(pk=execution.pk).is_terminal
                and runner.idle()
                and not Execution.objects.exclude(
                    state__in=["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"]
                ).exists()
            ),
            30,
            what="every execution to end",
        )
    return Execution.objects.get(pk=execution.pk)


def downstream() -> list[Execution]:
    return list(Execution.objects.filter(flow_id="load").order_by("id"))


def test_a_successful_upstream_starts_the_downstream_with_its_outputs(transactional_db):
    save_flow(DOWNSTREAM.replace("{conditions}", ON_SUCCESS), actor="test")
    _, up_rev, _ = save_flow(UPSTREAM, actor="test")
    source = run_until_idle(up_rev)
    assert source.state == State.SUCCESS
    [started] = downstream()
    assert started.state == State.SUCCESS
    assert (
        started.taskruns.get().outputs["value"]
        == f"extract #{source.pk} SUCCESS rows=42"
    )
    assert started.trigger["variables"]["namespace"] == "company.sales"
    assert started.trigger["chain"] == ["company.sales.extract"]
    change = started.history.first()
    assert (change.cause, change.actor) == (Cause.TRIGGER, "flow:company.sales.extract")
    event = TriggerEvent.objects.get(kind="flow")
    assert (event.status, event.source_execution_id, event.execution_id) == (
        "fired",
        source.pk,
        started.pk,
    )


def test_conditions_that_do_not_match_start_nothing(transactional_db):
    save_flow(DOWNSTREAM.replace("{conditions}", ON_SUCCESS), actor="test")
    _, up_rev, _ = save_flow(UPSTREAM, actor="test")
    assert run_until_idle(up_rev, inputs={"fail": True}).state == State.FAILED
    assert downstream() == []


@pytest.mark.parametrize(
    ("conditions", "fires"),
    [
        ("    states: [FAILED]\n", False),
        ("    states: [SUCCESS, WARNING]\n", True),
        (
            "    conditions:\n      - type: ExecutionNamespace\n        namespace: company.sa\n"
            "        comparison: PREFIX\n",
            True,
        ),
        (
            "    conditions:\n      - type: io.kestra.core.models.conditions.types.ExecutionNamespaceCondition\n"
            "        namespace: company.sales\n        prefix: false\n",
            True,
        ),
        (
            "    conditions:\n      - type: ExecutionNamespace\n        namespace: company.hr\n",
            False,
        ),
        (
            "    conditions:\n      - type: ExecutionLabels\n        labels:\n          team: sales\n",
            True,
        ),
        (
            "    conditions:\n      - type: ExecutionLabels\n        labels:\n          team: hr\n",
            False,
        ),
        (
            "    conditions:\n      - type: Expression\n"
            "        expression: \"{{ trigger.outputs.rows == '42' }}\"\n",
            True,
        ),
        (
            "    conditions:\n      - type: Expression\n"
            "        expression: \"{{ trigger.outputs.rows == '7' }}\"\n",
            False,
        ),
        (
            "    preconditions:\n      flows:\n        - namespace: company.sales\n"
            "          flowId: extract\n          states: [SUCCESS]\n",
            True,
        ),
    ],
)
def test_each_condition_type(transactional_db, conditions, fires):
    save_flow(DOWNSTREAM.replace("{conditions}", conditions), actor="test")
    _, up_rev, _ = save_flow(UPSTREAM, actor="test")
    run_until_idle(up_rev)
    assert len(downstream()) == (1 if fires else 0)


def test_a_flow_never_triggers_itself(transactional_db):
    _, rev, _ = save_flow(
        """
id: selfish
namespace: company.loop
tasks:
  - id: a
    type: Return
    format: x
triggers:
  - id: again
    type: Flow
    conditions:
      - type: ExecutionNamespace
        namespace: company
        comparison: PREFIX
""",
        actor="test",
    )
    source = run_until_idle(rev)
    assert Execution.objects.filter(flow_id="selfish").count() == 1
    event = TriggerEvent.objects.get(kind="flow")
    assert event.status == "skipped"
    assert "company.loop.selfish would trigger itself" in event.reason
    assert LogEntry.objects.filter(
        execution=source, level="WARN", message__contains="would trigger itself"
    ).exists()


def test_a_cycle_through_two_flows_stops_after_one_round(transactional_db):
    template = """
id: {me}
namespace: company.cycle
tasks:
  - id: a
    type: Return
    format: x
triggers:
  - id: on_other
    type: Flow
    conditions:
      - type: ExecutionFlow
        namespace: company.cycle
        flowId: {other}
"""
    _, ping, _ = save_flow(template.format(me="ping", other="pong"), actor="test")
    save_flow(template.format(me="pong", other="ping"), actor="test")
    run_until_idle(ping)
    assert Execution.objects.filter(flow_id="ping").count() == 1
    assert Execution.objects.filter(flow_id="pong").count() == 1
    assert TriggerEvent.objects.filter(status="skipped", flow_id="ping").exists()


def test_the_same_end_never_fires_twice(transactional_db):
    save_flow(DOWNSTREAM.replace("{conditions}", ON_SUCCESS), actor="test")
    _, up_rev, _ = save_flow(UPSTREAM, actor="test")
    source = run_until_idle(up_rev)
    # The end is delivered again (a duplicate signal, a second process).
    with use_in_process():
        on_execution_end(
            Execution, execution=source, old=State.RUNNING, new=State.SUCCESS
        )
        assert process_pending() == 0
    assert len(downstream()) == 1
    assert TriggerEvent.objects.filter(kind="flow").count() == 1


def test_events_a_crash_left_pending_are_started_by_the_sweep(transactional_db):
    save_flow(DOWNSTREAM.replace("{conditions}", ON_SUCCESS), actor="test")
    _, up_rev, _ = save_flow(UPSTREAM, actor="test")
    execution = create_execution(up_rev, start=False, actor=Actor.system("test"))
    # The process died right after the end committed, before it started the
    # downstream: the event is there, pending.

    machine.transition(execution, State.RUNNING, actor=Actor(Cause.EXECUTOR, ""))
    machine.transition(execution, State.SUCCESS, actor=Actor(Cause.EXECUTOR, ""))
    TriggerEvent.objects.filter(kind="flow").update(status="pending", execution=None)
    Execution.objects.filter(flow_id="load").delete()
    assert process_pending() == 1
    assert TriggerEvent.objects.get(kind="flow").status == "fired"
    assert len(downstream()) == 1
