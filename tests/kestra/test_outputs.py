"""Rules: the Subflow task's own ``outputs`` (Kestra's
``plugin.core.flow.Subflow.createSubflowExecutionResult``), loop outputs of
nested ForEach keyed by the outer values first and ``currentEachOutput``
(Kestra's ``CurrentEachOutputFunction``), and the ``is json`` test."""

from executions.models import State
from tests.kestra.conftest import runs

CHILD = """
id: producer
namespace: company.team
inputs:
  - id: n
    type: INT
tasks:
  - id: make
    type: io.kestra.plugin.core.debug.Return
    format: "made {{ inputs.n }}"
"""

PARENT = """
id: consumer
namespace: company.team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: producer
    inputs:
      n: 7
    outputs:
      picked: "{{ outputs.make.value }}!"
  - id: use
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.call.outputs.picked }}"
"""

BROKEN = PARENT.replace("id: consumer", "id: consumer_broken").replace(
    '"{{ outputs.make.value }}!"', '"{{ outputs.nothing_like_this.value }}"'
)


def test_subflow_outputs_render_against_the_ended_child(kestra):
    kestra.deploy(CHILD)
    results = kestra.run_all({"ok": PARENT, "broken": BROKEN})
    ok = results["ok"]
    assert ok.state == State.SUCCESS
    call = ok.taskruns.get(task_id="call")
    assert call.outputs["outputs"] == {"picked": "made 7!"}
    assert call.outputs["state"] == State.SUCCESS
    assert ok.taskruns.get(task_id="use").outputs == {"value": "made 7!"}
    # A render failure fails the task (the child itself succeeded).
    broken = results["broken"]
    assert broken.state == State.FAILED
    assert runs(broken) == {("call", None): "FAILED"}
    failed = broken.taskruns.get(task_id="call")
    assert failed.error.startswith("outputs: ")
    assert "nothing_like_this" in failed.error


NESTED = """
id: nested_each
namespace: company.team
tasks:
  - id: outer
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: inner
        type: io.kestra.plugin.core.flow.ForEach
        values: ["1", "2"]
        tasks:
          - id: cell
            type: io.kestra.plugin.core.debug.Return
            format: "{{ parents[0].taskrun.value }}{{ taskrun.value }}"
          - id: mine
            type: io.kestra.plugin.core.debug.Return
            format: "{{ currentEachOutput(outputs.cell).value }}"
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.cell['b']['1'].value }} {{ outputs.cell.a | length }}"
  - id: json_check
    type: io.kestra.plugin.core.debug.Return
    format: "{{ '{\\"k\\": 1}' is json }} {{ 'nope' is json }}"
"""


def test_nested_foreach_outputs_are_keyed_by_the_outer_value_first(kestra):
    execution = kestra.run(NESTED)
    assert execution.state == State.SUCCESS
    assert execution.taskruns.get(task_id="read").outputs == {"value": "b1 2"}
    mine = {
        (tr.parent.value, tr.value): tr.outputs["value"]
        for tr in execution.taskruns.filter(task_id="mine").select_related("parent")
    }
    assert mine == {
        ("a", "1"): "a1",
        ("a", "2"): "a2",
        ("b", "1"): "b1",
        ("b", "2"): "b2",
    }
    assert execution.taskruns.get(task_id="json_check").outputs == {
        "value": "true false"
    }
