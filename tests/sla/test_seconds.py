"""Deadlines fire at their time, not at the next minute sweep: Celery beat
sends the SLA tick, a real worker runs the flow and the tick, a real SMTP
server receives the alerts."""

from __future__ import annotations

import pytest

from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import State
from sla.models import Behavior, Level, SlaMiss
from tests.conftest import wait_for
from tests.triggers.test_beat import start_beat, stop

pytestmark = pytest.mark.subprocess

FLOW = """id: report
namespace: tests.fast
tasks:
  - id: work
    type: Sleep
    duration: PT45S
"""


def test_an_slo_warning_leaves_when_the_slo_passes_in_its_own_email(
    deploy, rule, smtp, start_worker
):
    rule(
        name="fast reports",
        namespace="tests",
        slo="10s",
        sla="20s",
        recipients="oncall@example.com",
        on_breach=Behavior.CANCEL,
    )
    revision = deploy(FLOW)
    start_worker(
        "w1",
        env={
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp.port),
            "ORCHESTRA_BASE_URL": "https://orchestra.example.com",
        },
    )
    beat = start_beat("sla")
    try:
        execution = create_execution(revision, actor=Actor.system("test"))
        wait_for(lambda: len(smtp.messages) >= 2, 90, what="two SLA emails")
    finally:
        stop(beat)
    warning, breach = smtp.messages[:2]
    assert warning["Subject"] == "[Orchestra] 1 SLO warning in tests.fast"
    assert breach["Subject"] == "[Orchestra] 1 SLA breach in tests.fast"
    slo_miss = SlaMiss.objects.get(execution=execution, level=Level.SLO)
    sla_miss = SlaMiss.objects.get(execution=execution, level=Level.SLA)
    # The warning came before the breach was even seen, not batched with it.
    assert warning.received_at < sla_miss.detected_at
    assert slo_miss.execution_state == sla_miss.execution_state == State.RUNNING
    # The breach's action stopped the run long before its 45 s sleep ended.
    wait_for(
        lambda: (execution.refresh_from_db(), execution.is_terminal)[1],
        30,
        what="the breach to cancel the execution",
    )
    assert execution.state == State.CANCELLED
    sla_miss.refresh_from_db()
    assert sla_miss.action == "cancelled"
    assert len(smtp.messages) == 2
