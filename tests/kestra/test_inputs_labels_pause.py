"""Rules: dotted input ids (Kestra's ``Input`` id pattern and
``MapUtils.flattenToNestedMap`` in ``FlowInputOutput``), the
``system.correlationId`` label (``Execution.newExecution``,
``ExecutableUtils.systemLabels``, ``RunVariables.mapLabel``), the Labels
task (``plugin.core.execution.Labels``) and Pause with child ``tasks``
(``plugin.core.flow.Pause``)."""

from executions.lifecycle.actor import Actor
from executions.lifecycle.resume import resume
from executions.models import Execution, State
from flows.spec import FlowInvalid, parse_flow
from tests.conftest import wait_for
from tests.kestra.conftest import ran, runs

DOTTED = """
id: dotted_inputs
namespace: company.team
inputs:
  - id: nested.string
    type: STRING
    defaults: deep
  - id: nested.number
    type: INT
    defaults: 3
  - id: plain
    type: STRING
    defaults: top
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.nested.string }}-{{ inputs.nested.number + 1 }}-{{ inputs.plain }}"
"""


def test_dotted_input_ids_nest_their_values(kestra):
    execution = kestra.run(DOTTED)
    assert execution.state == State.SUCCESS
    assert execution.taskruns.get(task_id="show").outputs == {"value": "deep-4-top"}
    # Stored (API, UI) under the id as written.
    assert execution.inputs["nested.string"] == "deep"


CHILD = """
id: child
namespace: company.team
tasks:
  - id: cid
    type: io.kestra.plugin.core.debug.Return
    format: "{{ labels.system.correlationId }}"
"""

PARENT = """
id: parent
namespace: company.team
labels:
  team: data
tasks:
  - id: mine
    type: io.kestra.plugin.core.debug.Return
    format: "{{ labels.system.correlationId }}/{{ labels.team }}"
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: child
  - id: set
    type: io.kestra.plugin.core.execution.Labels
    labels: '{"stage": "{{ outputs.mine.value | length }}", "owner": "ops"}'
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ labels.stage }} {{ labels.owner }}"
"""


def test_every_execution_has_a_correlation_id_that_subflows_inherit(kestra):
    kestra.deploy(CHILD)
    parent = kestra.run(PARENT)
    assert parent.state == State.SUCCESS
    cid = str(parent.pk)
    assert parent.labels["system.correlationId"] == cid
    assert parent.taskruns.get(task_id="mine").outputs == {"value": f"{cid}/data"}
    child = Execution.objects.get(parent=parent)
    # The child's own labels stay its own (no inheritLabels), but the
    # correlation id is the parent's.
    assert child.labels == {"system.correlationId": cid}
    assert child.taskruns.get(task_id="cid").outputs == {"value": cid}
    # The Labels task read a JSON string.
    assert parent.labels["owner"] == "ops"
    assert parent.taskruns.get(task_id="read").outputs == {
        "value": f"{len(cid) + 5} ops"
    }


def test_system_labels_belong_to_the_engine(kestra):
    source = PARENT.replace("  team: data\n", "  system.correlationId: mine\n")
    try:
        parse_flow(source)
    except FlowInvalid as exc:
        assert "system labels can only be set by the engine" in str(exc)
    else:
        raise AssertionError("a flow setting a system label was accepted")
    execution = kestra.run(
        "id: sneaky\nnamespace: company.team\ntasks:\n"
        "  - id: set\n    type: io.kestra.plugin.core.execution.Labels\n"
        "    labels:\n      system.correlationId: forged\n"
    )
    assert execution.state == State.FAILED
    assert "system labels can only be set by the engine" in execution.error
    assert execution.labels["system.correlationId"] == str(execution.pk)


PAUSE = """
id: pause_tasks
namespace: company.team
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    delay: PT1S
    tasks:
      - id: after_delay
        type: io.kestra.plugin.core.debug.Return
        format: "{{ task.id }}"
  - id: approval
    type: io.kestra.plugin.core.flow.Pause
    tasks:
      - id: after_resume
        type: io.kestra.plugin.core.debug.Return
        format: "{{ task.id }}"
      - id: second
        type: io.kestra.plugin.core.log.Log
        message: done
  - id: last
    type: io.kestra.plugin.core.log.Log
    message: end
"""


def test_pause_children_run_after_the_pause_ends(kestra):
    execution = kestra.start(PAUSE)
    wait_for(
        lambda: execution.taskruns.filter(
            task_id="approval", state=State.PAUSED
        ).exists(),
        60,
        what="the second pause",
    )
    # The first pause's child ran once its delay was over, not before.
    assert runs(execution)[("after_delay", None)] == State.SUCCESS
    assert not execution.taskruns.filter(task_id="after_resume").exists()
    resume(execution.pk, actor=Actor("api", "dana"))
    execution = kestra.wait(execution)
    assert execution.state == State.SUCCESS
    assert runs(execution) == {
        ("wait", None): "SUCCESS",
        ("after_delay", None): "SUCCESS",
        ("approval", None): "SUCCESS",
        ("after_resume", None): "SUCCESS",
        ("second", None): "SUCCESS",
        ("last", None): "SUCCESS",
    }
    assert ran(execution) == [
        "wait",
        "after_delay",
        "approval",
        "after_resume",
        "second",
        "last",
    ]
