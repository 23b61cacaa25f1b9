"""Lookup (alias Query) and Count, and the shipped check_sla system flow that
uses them, run by the engine."""

import json
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import Execution, State
from executions.storage import read_uri

# The system flow that checks SLAs, as shipped in the examples.
SLA_FLOW = (
    Path(__file__).resolve().parents[2] / "examples/flows/sla_flow.yml"
).read_text()

CHECK_SLA = """id: check_sla
namespace: system
tasks:
  - id: lookup
    type: io.kestra.plugin.core.execution.Lookup
    namespace: datateam
    flowId: sla_flow
    triggerId: daily
    last: PT24H
    labels:
      env: uat
{extra}"""


def _execution(
    revision,
    *,
    hours_ago: float,
    state=State.SUCCESS,
    trigger="daily",
    inputs=None,
    labels=None,
    minutes=30,
):
    execution = create_execution(
        revision,
        start=False,
        inputs=inputs,
        labels=labels,
        trigger={"id": trigger, "type": "Schedule"} if trigger else None,
        actor=Actor.system("test"),
    )
    created = timezone.now() - timedelta(hours=hours_ago)
    Execution.objects.filter(pk=execution.pk).update(
        state=state,
        created_at=created,
        started_at=created,
        ended_at=created + timedelta(minutes=minutes)
        if state != State.RUNNING
        else None,
    )
    return execution


def _rows(execution):
    tr = execution.taskruns.get(task_id="lookup")
    text = read_uri(tr.outputs["uri"]).decode()
    return tr.outputs, [json.loads(line) for line in text.splitlines()]


def test_lookup_finds_the_executions_of_the_seed_check_sla_flow(
    deploy, run_inprocess, settings
):
    settings.ORCHESTRA_BASE_URL = "https://orchestra.example.com"
    revision = deploy(SLA_FLOW)
    recent = _execution(revision, hours_ago=2, inputs={"SLA": "PT30M"}, minutes=50)
    running = _execution(revision, hours_ago=1, state=State.RUNNING)
    _execution(revision, hours_ago=30)  # older than PT24H
    _execution(revision, hours_ago=3, trigger="manual")  # other trigger
    _execution(revision, hours_ago=3, labels={"env": "prod"})  # other label

    execution = run_inprocess(deploy(CHECK_SLA.format(extra="")))
    assert execution.state == State.SUCCESS
    outputs, rows = _rows(execution)
    assert outputs["uri"].startswith("kestra:///") and outputs["uri"].endswith(".ion")
    assert outputs["size"] == 2
    assert [r["id"] for r in rows] == [recent.pk, running.pk]
    first = rows[0]
    assert set(first) == {
        "id",
        "namespace",
        "flowId",
        "revision",
        "state",
        "startDate",
        "endDate",
        "duration",
        "labels",
        "inputs",
        "triggerId",
        "url",
    }
    assert first["namespace"] == "datateam" and first["flowId"] == "sla_flow"
    assert first["state"] == "SUCCESS" and first["duration"] == "PT50M"
    assert first["inputs"] == {"SLA": "PT30M", "SLO": "PT45M"}
    # Kestra's system labels come with every execution (system.correlationId).
    own = {k: v for k, v in first["labels"].items() if not k.startswith("system.")}
    assert own == {"env": "uat"} and first["triggerId"] == "daily"
    assert "system.correlationId" in first["labels"]
    assert first["url"] == f"https://orchestra.example.com/executions/{recent.pk}/"
    assert rows[1]["endDate"] is None and rows[1]["state"] == "RUNNING"


def test_lookup_filters_by_states_inputs_revision_and_since(deploy, run_inprocess):
    revision = deploy(SLA_FLOW)
    failed = _execution(
        revision, hours_ago=2, state=State.FAILED, inputs={"SLA": "PT2H"}
    )
    _execution(revision, hours_ago=2, state=State.SUCCESS, inputs={"SLA": "PT2H"})
    _execution(revision, hours_ago=2, state=State.FAILED)
    extra = "    states: [FAILED]\n    inputs:\n      SLA: PT2H\n    revision: latest\n"
    outputs, rows = _rows(run_inprocess(deploy(CHECK_SLA.format(extra=extra))))
    assert [r["id"] for r in rows] == [failed.pk]

    # since moves the 24 h window: 10 h ago it held nothing.
    since = (timezone.now() - timedelta(hours=10)).isoformat()
    outputs, rows = _rows(
        run_inprocess(deploy(CHECK_SLA.format(extra=f"    since: '{since}'\n")))
    )
    assert outputs["size"] == 0 and rows == []


def test_lookup_rejects_a_bad_filter_with_a_clear_message(deploy, run_inprocess):
    from flows.spec import FlowInvalid, parse_flow

    try:
        parse_flow(CHECK_SLA.format(extra="    states: [DONE]\n"))
    except FlowInvalid as exc:
        assert "unknown state 'DONE'" in str(exc) and "tasks[0].states" in str(exc)
    else:
        raise AssertionError("an unknown state must be rejected when the flow is saved")
    execution = run_inprocess(deploy(CHECK_SLA.format(extra="    revision: newest\n")))
    assert execution.state == State.FAILED
    assert "revision must be a number or 'latest', got 'newest'" in execution.error


def test_count_reports_flows_without_runs(deploy, run_inprocess):
    revision = deploy(SLA_FLOW)
    deploy(SLA_FLOW.replace("id: sla_flow", "id: quiet_flow"))
    _execution(revision, hours_ago=2)
    _execution(revision, hours_ago=3)
    _execution(revision, hours_ago=3, state=State.FAILED)
    flow = """id: counts
namespace: system
tasks:
  - id: count
    type: io.kestra.plugin.core.execution.Count
    namespaces: [datateam]
    states: [SUCCESS]
    startDate: "{{ now() | dateAdd(-1, 'DAYS') }}"
    expression: "{{ count == 0 }}"
  - id: all
    type: Count
    flows:
      - namespace: datateam
        flowId: sla_flow
    startDate: "{{ now() | dateAdd(-1, 'DAYS') }}"
"""
    execution = run_inprocess(deploy(flow))
    assert execution.state == State.SUCCESS, execution.error
    outputs = {tr.task_id: tr.outputs for tr in execution.taskruns.all()}
    assert outputs["count"]["results"] == [
        {"namespace": "datateam", "flowId": "quiet_flow", "count": 0}
    ]
    assert outputs["all"]["results"] == [
        {"namespace": "datateam", "flowId": "sla_flow", "count": 3}
    ]
    assert outputs["all"]["total"] == 3


PROCESS_SLA = """id: process_sla
namespace: system
inputs:
  - id: execution
    type: FILE
tasks:
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.execution) | trim }}"
"""

CHECK_SLA_FULL = r"""id: check_sla
namespace: system
tasks:
  - id: lookup
    type: io.kestra.plugin.core.execution.Lookup
    namespace: datateam
    flowId: sla_flow
    triggerId: daily
    last: PT24H
    labels:
      env: uat
  - id: send_alert
    type: io.kestra.plugin.scripts.python.Script
    inputFiles:
      executions.ion: "{{ outputs.lookup.uri }}"
    script: |
      import json, re
      def seconds(iso):
          h, m, s = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", iso).groups()
          return int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
      rows = [json.loads(line) for line in open("executions.ion") if line.strip()]
      late = [r["id"] for r in rows
              if r["duration"] and seconds(r["duration"]) > seconds(r["inputs"]["SLA"])]
      print("::" + json.dumps({"outputs": {"late": late, "seen": len(rows)}}) + "::")
  - id: for_each
    type: io.kestra.core.tasks.flows.ForEachItem
    items: "{{ outputs.lookup.uri }}"
    namespace: system
    flowId: process_sla
    inputs:
      execution: "{{ taskrun.items }}"
"""


def test_the_check_sla_flow_runs_lookup_then_a_script_then_fans_out(
    deploy, run_inprocess
):
    """The check_sla system flow end to end: the Lookup file feeds a Python script
    (one alert for several misses) and ForEachItem (one subflow per execution)."""
    revision = deploy(SLA_FLOW)
    late = _execution(revision, hours_ago=2, inputs={"SLA": "PT30M"}, minutes=50)
    on_time = _execution(revision, hours_ago=3, inputs={"SLA": "PT1H"}, minutes=20)
    deploy(PROCESS_SLA)

    execution = run_inprocess(deploy(CHECK_SLA_FULL), timeout=90)
    assert execution.state == State.SUCCESS, execution.error
    alert = execution.taskruns.get(task_id="send_alert")
    assert alert.outputs["vars"] == {"late": [late.pk], "seen": 2}
    fan_out = execution.taskruns.get(task_id="for_each")
    assert fan_out.outputs["numberOfBatches"] == 2
    children = Execution.objects.filter(
        parent=execution, flow_id="process_sla"
    ).order_by("pk")
    assert [c.state for c in children] == [State.SUCCESS, State.SUCCESS]
    seen = sorted(
        json.loads(c.taskruns.get(task_id="read").outputs["value"])["id"]
        for c in children
    )
    assert seen == sorted([late.pk, on_time.pk])
