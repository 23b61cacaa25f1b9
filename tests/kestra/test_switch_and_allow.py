"""Rules: Switch (Kestra's ``plugin.core.flow.Switch`` with
``SwitchTaskValidation``) and ``allowFailure``/``allowWarning`` (Kestra's
``Worker`` for runnable tasks, ``Execution.guessFinalState`` for flowables)."""

import pytest

from executions.models import State
from flows.spec import FlowInvalid, parse_flow
from tests.kestra.conftest import runs

SWITCH = """
id: switch_rules
namespace: company.team
inputs:
  - id: pick
    type: STRING
    defaults: nothing
tasks:
  - id: by_number
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ 1 }}"
    cases:
      1:
        - id: one
          type: io.kestra.plugin.core.debug.Return
          format: matched one
      2:
        - id: two
          type: io.kestra.plugin.core.debug.Return
          format: not this
  - id: by_bool
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ 2 > 1 }}"
    cases:
      true:
        - id: bool_case
          type: io.kestra.plugin.core.debug.Return
          format: matched true
  - id: nothing_matches
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ inputs.pick }}"
    cases:
      "NO":
        - id: never
          type: io.kestra.plugin.core.debug.Return
          format: never
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: not reached
"""


def test_switch_compares_keys_as_text_and_fails_without_a_match(kestra):
    execution = kestra.run(SWITCH)
    assert execution.state == State.FAILED
    assert runs(execution) == {
        ("by_number", None): "SUCCESS",
        ("one", None): "SUCCESS",
        ("by_bool", None): "SUCCESS",
        ("bool_case", None): "SUCCESS",
        ("nothing_matches", None): "FAILED",
    }
    failed = execution.taskruns.get(task_id="nothing_matches")
    assert "no case matches the value 'nothing'" in failed.error
    assert execution.taskruns.get(task_id="by_number").outputs == {
        "value": "1",
        "defaults": False,
    }


def test_a_switch_with_neither_cases_nor_defaults_is_invalid():
    source = (
        "id: s\nnamespace: company.team\ntasks:\n"
        "  - id: empty\n    type: io.kestra.plugin.core.flow.Switch\n    value: x\n"
    )
    with pytest.raises(FlowInvalid) as exc:
        parse_flow(source)
    assert "a Switch needs 'cases' or 'defaults'" in str(exc.value)
    assert exc.value.errors[0].path.startswith("tasks[0]")


ALLOW = """
id: allow_rules
namespace: company.team
tasks:
  - id: both
    type: io.kestra.plugin.core.execution.Fail
    allowFailure: true
    allowWarning: true
  - id: only_failure
    type: io.kestra.plugin.core.execution.Fail
    allowFailure: true
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    allowFailure: true
    allowWarning: true
    tasks:
      - id: inner_fail
        type: io.kestra.plugin.core.execution.Fail
  - id: warn
    type: io.kestra.plugin.core.log.Log
    level: WARN
    message: careful
    allowWarning: true
  - id: last
    type: io.kestra.plugin.core.log.Log
    message: runs
"""


def test_allow_warning_on_top_of_allow_failure_ends_success(kestra):
    execution = kestra.run(ALLOW)
    assert runs(execution) == {
        ("both", None): "SUCCESS",
        ("only_failure", None): "WARNING",
        ("seq", None): "SUCCESS",
        ("inner_fail", None): "FAILED",
        ("warn", None): "SUCCESS",
        ("last", None): "SUCCESS",
    }
    # only_failure is a WARNING: the flow ends WARNING.
    assert execution.state == State.WARNING
    quiet = kestra.run(
        "id: allow_quiet\nnamespace: company.team\ntasks:\n"
        "  - id: f\n    type: io.kestra.plugin.core.execution.Fail\n"
        "    allowFailure: true\n    allowWarning: true\n"
    )
    assert quiet.state == State.SUCCESS
    assert runs(quiet) == {("f", None): "SUCCESS"}
