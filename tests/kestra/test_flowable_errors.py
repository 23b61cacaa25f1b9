"""Rule: a flowable task's own ``errors`` and ``finally`` (Kestra's
``FlowableTask``; states from ``FlowableUtils.resolveState`` and
``Execution.guessFinalState``, local errors chosen by
``Execution.findTaskDependingFlowState``)."""

from executions.models import State
from tests.kestra.conftest import ran, runs

LOCAL_ERRORS = """
id: local_errors
namespace: company.team
tasks:
  - id: outer
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: "{{ task.id }}"
      - id: inner
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
          - id: never
            type: io.kestra.plugin.core.debug.Return
            format: unreachable
        errors:
          - id: local_one
            type: io.kestra.plugin.core.debug.Return
            format: "local {{ task.id }}"
          - id: local_two
            type: io.kestra.plugin.core.log.Log
            message: "second local handler"
        finally:
          - id: local_finally
            type: io.kestra.plugin.core.log.Log
            message: "cleanup of inner"
  - id: not_reached
    type: io.kestra.plugin.core.log.Log
    message: no
errors:
  - id: global_handler
    type: io.kestra.plugin.core.log.Log
    message: "global handler"
"""

PARALLEL_AND_FOREACH = """
id: local_errors_loops
namespace: company.team
tasks:
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    allowFailure: true
    tasks:
      - id: ok
        type: io.kestra.plugin.core.debug.Return
        format: fine
      - id: bad
        type: io.kestra.plugin.core.execution.Fail
    errors:
      - id: par_handler
        type: io.kestra.plugin.core.log.Log
        message: "parallel failed"
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: body
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ taskrun.value == 'b' }}"
    errors:
      - id: each_handler
        type: io.kestra.plugin.core.log.Log
        message: "loop failed"
"""

SUCCESS_SKIPS_ERRORS = """
id: local_errors_unused
namespace: company.team
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{ true }}"
    then:
      - id: fine
        type: io.kestra.plugin.core.debug.Return
        format: ok
    errors:
      - id: unused
        type: io.kestra.plugin.core.log.Log
        message: never
    finally:
      - id: always
        type: io.kestra.plugin.core.log.Log
        message: always
  - id: sw
    type: io.kestra.plugin.core.flow.Switch
    value: "b"
    cases:
      b:
        - id: case_b
          type: io.kestra.plugin.core.execution.Fail
    errors:
      - id: switch_handler
        type: io.kestra.plugin.core.log.Log
        message: "switch case failed"
"""


def test_a_failed_child_runs_the_flowables_own_errors_then_the_flows(kestra):
    """The failing Sequential runs its errors and finally, still ends FAILED,
    so its parent fails, nothing after it runs and the flow's errors run."""
    execution = kestra.run(LOCAL_ERRORS)
    assert execution.state == State.FAILED
    assert runs(execution) == {
        ("outer", None): "FAILED",
        ("first", None): "SUCCESS",
        ("inner", None): "FAILED",
        ("boom", None): "FAILED",
        ("local_one", None): "SUCCESS",
        ("local_two", None): "SUCCESS",
        ("local_finally", None): "SUCCESS",
        ("global_handler", None): "SUCCESS",
    }
    order = ran(execution)
    assert order.index("local_two") < order.index("local_finally")
    assert order.index("local_finally") < order.index("global_handler")
    local = execution.taskruns.get(task_id="local_one")
    assert local.outputs == {"value": "local local_one"}
    assert local.parent.task_id == "inner"


def test_parallel_and_foreach_run_their_errors_once_after_the_failure(kestra):
    """Parallel with allowFailure ends WARNING after its errors ran; a ForEach
    whose second value fails runs its errors and ends FAILED."""
    execution = kestra.run(PARALLEL_AND_FOREACH)
    assert execution.state == State.FAILED
    states = runs(execution)
    assert states[("par", None)] == State.WARNING
    assert states[("bad", None)] == State.FAILED
    assert states[("par_handler", None)] == State.SUCCESS
    assert states[("each", None)] == State.FAILED
    assert states[("body", "a")] == State.SUCCESS
    assert states[("body", "b")] == State.FAILED
    assert execution.taskruns.filter(task_id="each_handler").count() == 1


def test_errors_do_not_run_when_children_succeed_and_switch_cases_have_them(kestra):
    execution = kestra.run(SUCCESS_SKIPS_ERRORS)
    assert execution.state == State.FAILED
    states = runs(execution)
    assert ("unused", None) not in states
    assert states[("always", None)] == State.SUCCESS
    assert states[("check", None)] == State.SUCCESS
    assert states[("case_b", None)] == State.FAILED
    assert states[("switch_handler", None)] == State.SUCCESS
    assert states[("sw", None)] == State.FAILED


def test_local_errors_are_accepted_by_validation_and_hold_unique_ids():
    from flows.spec import FlowInvalid, parse_flow

    spec = parse_flow(LOCAL_ERRORS)
    inner = spec.task("inner")
    assert [n.id for n in inner.children["errors"]] == ["local_one", "local_two"]
    assert [n.id for n in inner.children["finally"]] == ["local_finally"]
    clash = LOCAL_ERRORS.replace("id: local_two", "id: boom")
    try:
        parse_flow(clash)
    except FlowInvalid as exc:
        assert "duplicate task id 'boom'" in str(exc)
    else:
        raise AssertionError("a handler reusing a task id was accepted")
