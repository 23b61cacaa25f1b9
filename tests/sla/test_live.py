"""A running execution past its SLA is reported (and acted on) while it runs:
the real engine in this process, the real sweep, a real SMTP server."""

import time

from executions import actions
from executions.engine.inprocess import use_in_process
from executions.models import Cause, State, StateChange
from sla import sweep
from sla.models import Behavior, SlaMiss
from tests.conftest import wait_for

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
    rule(name="on call", namespace="company", recipients="oncall@example.com",
         on_breach=Behavior.CANCEL)
    revision = deploy(FLOW)
    with use_in_process() as runner:
        execution = actions.create_execution(revision)
        wait_for(lambda: execution.taskruns.filter(state=State.RUNNING).exists(),
                 what="the task to start")
        time.sleep(0.6)
        result = sweep.run()
        assert result.misses == 1 and result.emails_sent == 1

        miss = SlaMiss.objects.get()
        assert miss.execution_state == State.RUNNING
        assert "so far, still RUNNING" in smtp.messages[0].get_body(("plain",)).get_content()
        assert miss.key == "input"  # the flow's SLA input overrides the rule's duration

        # The rule's action stops the 20 s sleep now, not after it.
        wait_for(lambda: (execution.refresh_from_db(), execution.is_terminal)[1],
                 what="the execution to be cancelled")
        wait_for(runner.idle, what="the engine to settle")
    assert execution.state == State.CANCELLED
    assert execution.duration().total_seconds() < 10
    stop = StateChange.objects.filter(execution=execution, taskrun=None,
                                      cause=Cause.SLA).first()
    assert stop is not None and "SLA breached (SLA/SLO input)" in stop.reason
