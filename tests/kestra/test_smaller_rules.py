"""Smaller rules: ForEach values (Kestra's ``FlowableUtils.resolveEachTasks``:
nulls fail, distinct values, maps as compact JSON; ``concurrencyLimit: 0``
through ``resolveConcurrentNexts``), recursive subflows (``FlowValidator``),
expressions Pebble rejects only when rendering, and condition truth
(``TruthUtils.isTruthy``)."""

import pytest

from executions.models import State
from flows.spec import FlowInvalid, parse_flow
from tests.kestra.conftest import runs

NULL_VALUE = """
id: each_null
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: '[1, null, {"key": "k"}]'
    tasks:
      - id: body
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
  - id: end
    type: io.kestra.plugin.core.debug.Return
    format: end
"""

VALUES = """
id: each_values
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "a", {"key": "k", "n": 1}, 2]
    tasks:
      - id: body
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
"""

ALL_AT_ONCE = """
id: each_all
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["1", "2", "3", "4"]
    concurrencyLimit: 0
    tasks:
      - id: body
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ taskrun.value == '1' }}"
      - id: second
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
"""

TRUTH = """
id: truth
namespace: company.team
tasks:
""" + "".join(
    f"""  - id: t{i}
    type: io.kestra.plugin.core.debug.Return
    format: ran
    runIf: "{text}"
"""
    for i, text in enumerate(
        ["no", "null", "False", "0", "-0", "", "{{ false }}", "{{ 0 }}", "{{ 'yes' }}"]
    )
)


def test_foreach_values_follow_kestras_rules(kestra):
    results = kestra.run_all({"null": NULL_VALUE, "values": VALUES, "all": ALL_AT_ONCE})
    null = results["null"]
    assert null.state == State.FAILED
    assert runs(null) == {("each", None): "FAILED"}
    assert "null value" in null.taskruns.get(task_id="each").error

    values = results["values"]
    assert values.state == State.SUCCESS
    assert sorted(tr.value for tr in values.taskruns.filter(task_id="body")) == sorted(
        ["a", '{"key":"k","n":1}', "2"]
    )

    # With no limit every value starts at once: the other values run to
    # their end though the first one failed.
    every = results["all"]
    assert every.state == State.FAILED
    states = runs(every)
    assert states[("body", "1")] == State.FAILED
    assert ("second", "1") not in states
    for value in ("2", "3", "4"):
        assert states[("body", value)] == State.SUCCESS
        assert states[("second", value)] == State.SUCCESS


def test_a_flow_that_starts_itself_is_invalid():
    source = (
        "id: again\nnamespace: company.team\ntasks:\n"
        "  - id: loop\n    type: io.kestra.plugin.core.flow.Subflow\n"
        "    namespace: company.team\n    flowId: again\n"
    )
    with pytest.raises(FlowInvalid) as exc:
        parse_flow(source)
    assert exc.value.errors[0].path == "tasks[0]"
    assert "recursive call to flow 'company.team.again'" in str(exc.value)
    # Another flow of the same namespace is fine.
    parse_flow(source.replace("flowId: again", "flowId: other"))


def test_an_unknown_filter_is_a_warning_and_fails_at_run_time(kestra):
    source = (
        "id: later\nnamespace: company.team\ntasks:\n"
        "  - id: ok\n    type: io.kestra.plugin.core.debug.Return\n    format: fine\n"
        "  - id: bad\n    type: io.kestra.plugin.core.debug.Return\n"
        "    format: \"{{ 'x' | nosuchfilter }}\"\n"
    )
    spec = parse_flow(source)
    assert any("nosuchfilter" in w for w in spec.warnings)
    execution = kestra.run(source)
    assert execution.state == State.FAILED
    assert runs(execution) == {("ok", None): "SUCCESS", ("bad", None): "FAILED"}
    assert "nosuchfilter" in execution.taskruns.get(task_id="bad").error


def test_only_false_0_minus_0_and_empty_are_false(kestra):
    execution = kestra.run(TRUTH)
    assert execution.state == State.SUCCESS
    states = runs(execution)
    ran = [f"t{i}" for i in range(9) if states[(f"t{i}", None)] == State.SUCCESS]
    assert ran == ["t0", "t1", "t2", "t8"]
