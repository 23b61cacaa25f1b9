"""Subflow, ForEachItem, Pause/resume, restart, replay and kill of a parent,
each run through the in-process engine and through a real Celery worker
(PostgreSQL and Redis in CI)."""

from __future__ import annotations

import time

import pytest

from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError
from executions.lifecycle.labels import set_labels
from executions.lifecycle.replay import replay
from executions.lifecycle.restart import restart
from executions.lifecycle.resume import resume
from executions.lifecycle.start import create_execution
from executions.lifecycle.stop import kill
from executions.models import Cause, Execution, State, StateChange, TaskRun
from executions.storage import read_uri, save
from flows.spec.inputs import InputError
from tests.conftest import wait_for

NS = "tests.control"

CHILD = f"""
id: child
namespace: {NS}
inputs:
  - id: n
    type: INT
tasks:
  - id: check
    type: Fail
    condition: "{{{{ inputs.n < 0 }}}}"
    errorMessage: "negative {{{{ inputs.n }}}}"
  - id: double
    type: Return
    format: "{{{{ inputs.n * 2 }}}}"
outputs:
  - id: doubled
    type: STRING
    value: "{{{{ outputs.double.value }}}}"
"""

PARENT = f"""
id: parent
namespace: {NS}
inputs:
  - id: n
    type: INT
  - id: transmit
    type: BOOLEAN
    defaults: true
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {NS}
    flowId: child
    inputs:
      n: "{{{{ inputs.n }}}}"
    labels:
      caller: parent
    wait: true
    transmitFailed: "{{{{ inputs.transmit }}}}"
  - id: after
    type: Return
    format: "child said {{{{ outputs.call.outputs.doubled | default('nothing') }}}}"
"""


@pytest.fixture(params=["inprocess", pytest.param("worker", marks=pytest.mark.worker)])
def engine(request, transactional_db):
    """The engine the test drives: this process, or a real Celery worker."""
    if request.param == "inprocess":
        from executions.engine.inprocess import use_in_process

        with use_in_process() as runner:
            yield runner
            assert not runner.errors, runner.errors
    else:
        yield request.getfixturevalue("start_worker")("w1")


@pytest.fixture
def inprocess_engine(transactional_db):
    from executions.engine.inprocess import use_in_process

    with use_in_process() as runner:
        yield runner
        assert not runner.errors, runner.errors


def reload(execution: Execution) -> Execution:
    return Execution.objects.get(pk=execution.pk)


def wait_state(execution: Execution, *wanted: str, timeout: float = 30) -> Execution:
    wanted = wanted or tuple(
        s
        for s in State.values
        if s in ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")
    )
    return wait_for(
        lambda: (e := reload(execution)).state in wanted and e,
        timeout,
        interval=0.05,
        what=f"execution {execution.pk} to be {'/'.join(wanted)}",
    )


def attempts(execution: Execution, task_id: str) -> list[tuple[int, str]]:
    return list(
        TaskRun.objects.filter(execution=execution, task_id=task_id)
        .order_by("attempt", "pk")
        .values_list("attempt", "state")
    )


# --- Subflow -----------------------------------------------------------------------
def test_subflow_waits_for_its_child_and_passes_its_outputs(deploy, engine):
    deploy(CHILD)
    parent = create_execution(
        deploy(PARENT), inputs={"n": 21}, actor=Actor.system("test")
    )
    parent = wait_state(parent)
    assert parent.state == State.SUCCESS
    child = Execution.objects.get(parent=parent)
    call = parent.taskruns.get(task_id="call")
    assert (child.state, child.inputs, child.labels) == (
        "SUCCESS",
        {"n": 21},
        # The child carries its parent's correlation id (Kestra).
        {"caller": "parent", "system.correlationId": str(parent.pk)},
    )
    assert child.parent_taskrun_id == call.pk
    assert call.outputs == {
        "executionId": child.pk,
        "state": "SUCCESS",
        "outputs": {"doubled": "42"},
    }
    assert call.worker_id is None  # no worker thread waited for the child
    assert parent.taskruns.get(task_id="after").outputs == {"value": "child said 42"}
    assert child.trigger["variables"]["executionId"] == parent.pk


def test_a_failed_child_fails_the_parent_only_with_transmit_failed(deploy, engine):
    deploy(CHILD)
    rev = deploy(PARENT)
    failing = wait_state(
        create_execution(rev, inputs={"n": -1}, actor=Actor.system("test"))
    )
    assert failing.state == State.FAILED
    child = Execution.objects.get(parent=failing)
    assert child.state == State.FAILED
    assert failing.error == (
        f"task 'call' failed: subflow execution {child.pk} ended FAILED: "
        "task 'check' failed: negative -1"
    )
    assert not failing.taskruns.filter(task_id="after").exists()

    tolerant = wait_state(
        create_execution(
            rev, inputs={"n": -1, "transmit": False}, actor=Actor.system("test")
        )
    )
    assert tolerant.state == State.SUCCESS
    assert tolerant.taskruns.get(task_id="call").outputs["state"] == "FAILED"
    assert tolerant.logs.filter(
        level="WARN", message__contains="transmitFailed is false"
    ).exists()


def test_subflow_of_an_unknown_flow_fails_with_the_reason(deploy, run_inprocess):
    rev = deploy(
        f"id: lost\nnamespace: {NS}\ntasks:\n  - id: call\n    type: Subflow\n"
        f"    namespace: {NS}\n    flowId: nowhere\n"
    )
    execution = run_inprocess(rev)
    assert execution.state == State.FAILED
    assert execution.taskruns.get().error.startswith(
        f"flow {NS}.nowhere does not exist"
    )


def test_subflow_without_wait_ends_at_once_with_the_child_id(deploy, run_inprocess):
    deploy(
        CHILD.replace(
            "  - id: check",
            "  - id: nap\n    type: Sleep\n    duration: PT0.3S\n  - id: check",
        )
    )
    rev = deploy(
        PARENT.replace("wait: true", "wait: false").replace(
            "child said {{ outputs.call.outputs.doubled | default('nothing') }}",
            "started {{ outputs.call.executionId }}",
        )
    )
    parent = run_inprocess(rev, inputs={"n": 1})
    child = Execution.objects.get(parent=parent)
    assert parent.state == State.SUCCESS
    assert parent.taskruns.get(task_id="after").outputs == {
        "value": f"started {child.pk}"
    }
    wait_state(child)


# --- ForEachItem -------------------------------------------------------------------
BATCH_CHILD = f"""
id: batch
namespace: {NS}
inputs:
  - id: items
    type: FILE
  - id: iteration
    type: INT
tasks:
  - id: got
    type: Return
    format: "{{{{ inputs.iteration }}}}"
outputs:
  - id: file
    type: STRING
    value: "{{{{ inputs.items }}}}"
  - id: iteration
    type: STRING
    value: "{{{{ outputs.got.value }}}}"
"""

FOR_EACH = f"""
id: fan_out
namespace: {NS}
inputs:
  - id: rows
    type: FILE
tasks:
  - id: each
    type: io.kestra.core.tasks.flows.ForEachItem
    items: "{{{{ inputs.rows }}}}"
    batch:
      rows: 3
    namespace: {NS}
    flowId: batch
    inputs:
      items: "{{{{ taskrun.items }}}}"
      iteration: "{{{{ taskrun.iteration }}}}"
  - id: count
    type: Return
    format: "{{{{ outputs.each.numberOfBatches }}}}"
"""


def test_for_each_item_starts_one_child_per_batch_and_merges_their_outputs(
    deploy, engine
):
    deploy(BATCH_CHILD)
    lines = "".join(f'{{"row": {i}}}\n' for i in range(10))
    uri = save("tests.control/rows.ion", lines.encode())
    parent = wait_state(
        create_execution(
            deploy(FOR_EACH), inputs={"rows": uri}, actor=Actor.system("test")
        )
    )
    assert parent.state == State.SUCCESS
    children = list(Execution.objects.filter(parent=parent).order_by("pk"))
    assert len(children) == 4 and all(c.state == State.SUCCESS for c in children)
    batches = [read_uri(c.inputs["items"]).decode().splitlines() for c in children]
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert sum(batches, []) == lines.splitlines()
    assert [c.inputs["iteration"] for c in children] == [1, 2, 3, 4]
    each = parent.taskruns.get(task_id="each")
    assert each.outputs["numberOfBatches"] == 4
    assert each.outputs["iterations"] == {"SUCCESS": 4}
    merged = [line for line in read_uri(each.outputs["uri"]).decode().splitlines()]
    assert [int(__import__("json").loads(m)["iteration"]) for m in merged] == [
        1,
        2,
        3,
        4,
    ]
    assert parent.taskruns.get(task_id="count").outputs == {"value": "4"}


def test_for_each_item_over_a_missing_file_fails_clearly(deploy, run_inprocess):
    deploy(BATCH_CHILD)
    execution = run_inprocess(
        deploy(FOR_EACH), inputs={"rows": "kestra:///tests.control/nothing/here.ion"}
    )
    assert execution.state == State.FAILED
    assert execution.taskruns.get(task_id="each").error == (
        "items: no file stored at kestra:///tests.control/nothing/here.ion"
    )
    assert not Execution.objects.filter(parent=execution).exists()


# --- Pause and resume --------------------------------------------------------------
DELAYED = f"""
id: delayed
namespace: {NS}
tasks:
  - id: nap
    type: Pause
    delay: PT1S
  - id: after
    type: Return
    format: done
"""

APPROVAL = f"""
id: approval
namespace: {NS}
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
      - id: comment
        type: STRING
        defaults: none
  - id: after
    type: Return
    format: "{{{{ outputs.approve.onResume.comment }}}}"
"""


def test_a_pause_with_a_delay_resumes_by_itself(deploy, engine):
    execution = create_execution(deploy(DELAYED), actor=Actor.system("test"))
    paused = wait_state(execution, State.PAUSED, timeout=10)
    assert paused.taskruns.get(task_id="nap").state == State.PAUSED
    assert not paused.taskruns.filter(task_id="after").exists()
    done = wait_state(execution, timeout=20)
    assert done.state == State.SUCCESS
    nap = done.taskruns.get(task_id="nap")
    assert nap.worker_id is None and nap.ended_at - nap.started_at >= __import__(
        "datetime"
    ).timedelta(seconds=1)
    change = StateChange.objects.get(
        execution=execution, taskrun=None, from_state="PAUSED"
    )
    assert (change.to_state, change.cause, change.reason) == (
        "RUNNING",
        "executor",
        "nap resumed after 1s",
    )


def test_a_pause_is_resumed_by_an_action_with_typed_on_resume_inputs(deploy, engine):
    execution = create_execution(deploy(APPROVAL), actor=Actor.system("test"))
    wait_state(execution, State.PAUSED, timeout=10)
    with pytest.raises(InputError) as bad:
        resume(
            execution.pk,
            inputs={"approved": "maybe", "colour": "red"},
            actor=Actor(Cause.USER, "alice"),
        )
    assert bad.value.errors == {
        "approved": "expected true or false, got 'maybe'",
        "colour": "the paused task does not ask for this input (onResume: approved, comment)",
    }
    assert reload(execution).state == State.PAUSED  # a bad resume changes nothing
    resume(
        execution.pk,
        inputs={"approved": "true", "comment": "lgtm"},
        reason="checked the numbers",
        actor=Actor(Cause.USER, "alice"),
    )
    done = wait_state(execution)
    assert done.state == State.SUCCESS
    assert done.taskruns.get(task_id="approve").outputs == {
        "onResume": {"approved": True, "comment": "lgtm"}
    }
    assert done.taskruns.get(task_id="after").outputs == {"value": "lgtm"}
    change = StateChange.objects.get(
        execution=execution, taskrun=None, from_state="PAUSED"
    )
    assert (change.cause, change.actor, change.reason) == (
        "user",
        "alice",
        "checked the numbers",
    )
    with pytest.raises(ActionError, match="is SUCCESS, not PAUSED"):
        resume(execution.pk, actor=Actor(Cause.USER, "alice"))


def test_a_pause_timeout_fails_the_task_and_runs_errors(deploy, run_inprocess):
    rev = deploy(
        f"id: t\nnamespace: {NS}\ntasks:\n  - id: wait\n    type: Pause\n"
        "    timeout: PT0.3S\nerrors:\n  - id: alert\n    type: Log\n    message: late\n"
    )
    execution = run_inprocess(rev)
    assert execution.state == State.FAILED
    assert execution.taskruns.get(task_id="wait").error == "not resumed within 0.3s"
    assert execution.taskruns.get(task_id="alert").state == State.SUCCESS


def test_a_pause_timeout_with_behavior_warn_ends_in_warning(deploy, run_inprocess):
    rev = deploy(
        f"id: t\nnamespace: {NS}\ntasks:\n  - id: wait\n    type: Pause\n"
        "    timeout: PT0.2S\n    behavior: WARN\n  - id: next\n    type: Return\n"
        "    format: x\n"
    )
    execution = run_inprocess(rev)
    assert execution.state == State.WARNING
    assert execution.taskruns.get(task_id="next").state == State.SUCCESS


# --- restart -----------------------------------------------------------------------
FLAKY = f"""
id: flaky
namespace: {NS}
tasks:
  - id: first
    type: Return
    format: "first of {{{{ execution.id }}}}"
  - id: group
    type: Parallel
    tasks:
      - id: ok
        type: Return
        format: fine
      - id: check
        type: Fail
        condition: "{{{{ taskrun.attemptsCount == 0 }}}}"
        errorMessage: not yet
  - id: last
    type: Return
    format: "{{{{ outputs.ok.value }}}}"
errors:
  - id: on_error
    type: Log
    message: failed
"""


def test_restart_reruns_the_failed_branch_in_the_same_execution(deploy, engine):
    execution = wait_state(create_execution(deploy(FLAKY), actor=Actor.system("test")))
    assert execution.state == State.FAILED
    kept = {
        tr.task_id: tr.pk
        for tr in execution.taskruns.filter(task_id__in=["first", "ok"])
    }
    restart(execution.pk, reason="fixed upstream", actor=Actor(Cause.USER, "bob"))
    done = wait_state(execution)
    assert done.state == State.SUCCESS and done.attempt == 2 and done.error == ""
    assert attempts(done, "check") == [(1, "RESTARTED"), (2, "SUCCESS")]
    # Successful task runs were not run again and kept their outputs.
    assert attempts(done, "first") == [(1, "SUCCESS")] and attempts(done, "ok") == [
        (1, "SUCCESS")
    ]
    assert {
        tr.task_id: tr.pk for tr in done.taskruns.filter(task_id__in=["first", "ok"])
    } == kept
    assert attempts(done, "group") == [
        (2, "SUCCESS")
    ]  # the container ran again in place
    assert done.taskruns.get(task_id="last").outputs == {"value": "fine"}
    change = StateChange.objects.get(
        execution=execution, taskrun=None, to_state="RESTARTED"
    )
    assert (change.from_state, change.cause, change.actor, change.reason) == (
        "FAILED",
        "user",
        "bob",
        "fixed upstream",
    )
    with pytest.raises(ActionError, match="only FAILED, KILLED or CANCELLED"):
        restart(execution.pk, actor=Actor(Cause.USER, "bob"))


# --- replay ------------------------------------------------------------------------
STEPS = f"""
id: steps
namespace: {NS}
tasks:
  - id: a
    type: Return
    format: "a of {{{{ execution.id }}}}"
  - id: loop
    type: ForEach
    values: ["x", "y"]
    tasks:
      - id: b
        type: Return
        format: "b{{{{ taskrun.value }}}} of {{{{ execution.id }}}}"
      - id: c
        type: Return
        format: "c{{{{ taskrun.value }}}} after {{{{ outputs.a.value }}}}"
"""


def test_replay_from_a_task_copies_what_ran_before_and_runs_the_rest(deploy, engine):
    original = wait_state(create_execution(deploy(STEPS), actor=Actor.system("test")))
    assert original.state == State.SUCCESS
    replayed = replay(original.pk, from_task="c", actor=Actor(Cause.USER, "carol"))
    assert replayed.original_id == original.pk and replayed.pk != original.pk
    replayed = wait_state(replayed)
    assert replayed.state == State.SUCCESS
    outputs = {
        (tr.task_id, tr.value): tr.outputs.get("value")
        for tr in replayed.taskruns.filter(flowable=False)
    }
    assert outputs == {
        ("a", None): f"a of {original.pk}",  # copied
        ("b", "x"): f"bx of {original.pk}",
        ("b", "y"): f"by of {original.pk}",  # copied
        ("c", "x"): f"cx after a of {original.pk}",  # ran again in the replayed
        ("c", "y"): f"cy after a of {original.pk}",
    }
    ran_again = replayed.taskruns.filter(task_id="c").exclude(
        history__reason__startswith="copied"
    )
    assert ran_again.count() == 2
    created = StateChange.objects.get(execution=replayed, taskrun=None, from_state="")
    assert (created.actor, created.reason) == (
        "carol",
        f"replay of execution {original.pk} from task 'c'",
    )
    full = wait_state(replay(original.pk, actor=Actor(Cause.USER, "carol")))
    assert full.taskruns.get(task_id="a").outputs == {"value": f"a of {full.pk}"}


def test_replay_refuses_a_task_that_is_not_in_the_flow(deploy, run_inprocess):
    original = run_inprocess(deploy(STEPS))
    with pytest.raises(ActionError, match="task 'nope' is not among the tasks"):
        replay(original.pk, from_task="nope", actor=Actor(Cause.USER, "carol"))
    assert Execution.objects.count() == 1


# --- kill reaches children ---------------------------------------------------------
SLEEPY_CHILD = f"""
id: sleepy_child
namespace: {NS}
tasks:
  - id: nap
    type: Sleep
    duration: PT30S
"""


def test_killing_a_parent_kills_its_running_child(deploy, engine):
    deploy(SLEEPY_CHILD)
    rev = deploy(
        f"id: caller\nnamespace: {NS}\ntasks:\n  - id: call\n    type: Subflow\n"
        f"    namespace: {NS}\n    flowId: sleepy_child\n"
    )
    parent = create_execution(rev, actor=Actor.system("test"))
    nap = wait_for(
        lambda: TaskRun.objects.filter(
            execution__parent=parent, task_id="nap", state=State.RUNNING
        ).first(),
        30,
        what="the child's task to run",
    )
    started = time.monotonic()
    kill(parent.pk, reason="wrong day", actor=Actor("user", "alice"))
    assert wait_state(parent, timeout=10).state == State.KILLED
    child = wait_state(Execution.objects.get(parent=parent), timeout=10)
    assert time.monotonic() - started < 10  # not the 30 s sleep
    assert child.state == State.KILLED
    nap.refresh_from_db()
    assert nap.state == State.KILLED
    change = StateChange.objects.filter(
        execution=child, taskrun=None, to_state__in=["KILLING", "KILLED"]
    ).first()
    assert (change.actor, change.reason) == (
        "alice",
        f"parent execution {parent.pk} stopped",
    )


def test_killing_a_paused_execution_ends_it(deploy, engine):
    execution = create_execution(deploy(APPROVAL), actor=Actor.system("test"))
    wait_state(execution, State.PAUSED, timeout=10)
    kill(execution.pk, actor=Actor("user", "alice"))
    done = wait_state(execution, timeout=10)
    assert done.state == State.KILLED
    assert done.taskruns.get(task_id="approve").state == State.KILLED


# --- the example flows -------------------------------------------------------------
def test_the_fan_out_and_approval_examples_run_as_written(deploy, inprocess_engine):
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "examples" / "flows"
    revisions = {path.stem: deploy(path.read_text()) for path in folder.glob("*.yml")}
    orders = "".join(f'{{"order": {i}, "amount": {i * 10}}}\n' for i in range(250))
    uri = save("company.team/orders.jsonl", orders.encode())
    fan_out = wait_state(
        create_execution(
            revisions["orders_fan_out"],
            inputs={"orders": uri},
            actor=Actor.system("test"),
        )
    )
    assert fan_out.state == State.SUCCESS, fan_out.error
    assert fan_out.outputs == {
        "batches": 3,
        "greeting": "Welcome to Orchestra, the team (3 batches processed)",
    }
    batches = Execution.objects.filter(parent=fan_out, flow_id="process_orders")
    assert sorted(b.outputs["summary"] for b in batches) == [
        "batch 1 done",
        "batch 2 done",
        "batch 3 done",
    ]

    approval = create_execution(revisions["approval"], actor=Actor.system("test"))
    wait_state(approval, State.PAUSED, timeout=10)
    resume(
        approval.pk,
        inputs={"approved": "false", "reason": "numbers are off"},
        actor=Actor(Cause.USER, "alice"),
    )
    rejected = wait_state(approval)
    assert rejected.state == State.FAILED
    assert rejected.error == "task 'reject' failed: Rejected: numbers are off"


def test_restart_after_fixing_the_child_flow_starts_a_new_child(
    deploy, inprocess_engine
):
    deploy(CHILD)
    rev = deploy(
        PARENT.replace(
            "    wait: true\n", "    wait: true\n    restartBehavior: NEW_EXECUTION\n"
        )
    )
    parent = wait_state(
        create_execution(rev, inputs={"n": -4}, actor=Actor.system("test"))
    )
    assert parent.state == State.FAILED
    first_child = Execution.objects.get(parent=parent)
    deploy(CHILD.replace("inputs.n < 0", "inputs.n < -100"))  # the fix: a new revision
    restart(parent.pk, actor=Actor(Cause.USER, "bob"))
    parent = wait_state(parent)
    assert parent.state == State.SUCCESS
    assert attempts(parent, "call") == [(1, "RESTARTED"), (2, "SUCCESS")]
    second_child = Execution.objects.exclude(pk=first_child.pk).get(parent=parent)
    assert (second_child.revision, second_child.state) == (2, State.SUCCESS)
    assert parent.taskruns.get(task_id="after").outputs == {"value": "child said -8"}


def test_flows_test_stops_at_a_pause_nobody_can_resume(
    tmp_path, transactional_db, capsys
):
    from orchestra.cli import main

    path = tmp_path / "approval.yml"
    path.write_text(APPROVAL)
    assert main(["flows", "test", str(path)]) == 1
    err = capsys.readouterr().err
    assert "is paused by approve and waits for a resume" in err


def test_a_flow_that_starts_itself_stops_at_the_nesting_limit(deploy, inprocess_engine):
    from executions.engine.subflows import MAX_DEPTH

    # Written literally it is refused when saved (Kestra's rule); named by an
    # expression it is only found out at run time, by the nesting limit.
    rev = deploy(
        f"id: loop\nnamespace: {NS}\ntasks:\n  - id: again\n    type: Subflow\n"
        f'    namespace: {NS}\n    flowId: "{{{{ flow.id }}}}"\n'
    )
    top = wait_state(create_execution(rev, actor=Actor.system("test")), timeout=60)
    assert top.state == State.FAILED
    assert Execution.objects.count() == MAX_DEPTH
    deepest = Execution.objects.order_by("-pk").first()
    assert deepest.taskruns.get().error == (
        f"subflows nest at most {MAX_DEPTH} levels deep; does {NS}.loop start itself?"
    )


def test_for_each_item_fails_when_a_batch_fails(deploy, inprocess_engine):
    deploy(
        BATCH_CHILD.replace(
            "  - id: got",
            "  - id: boom\n    type: Fail\n"
            '    condition: "{{ inputs.iteration == 2 }}"\n  - id: got',
        )
    )
    uri = save("tests.control/six.ion", b"1\n2\n3\n4\n5\n6\n")
    parent = wait_state(
        create_execution(
            deploy(FOR_EACH), inputs={"rows": uri}, actor=Actor.system("test")
        )
    )
    assert parent.state == State.FAILED
    failed = Execution.objects.get(parent=parent, state=State.FAILED)
    each = parent.taskruns.get(task_id="each")
    assert each.error == f"1 of 2 subflow executions failed ({failed.pk})"
    assert each.outputs["iterations"] == {"SUCCESS": 1, "FAILED": 1}


def test_restart_of_a_killed_execution_runs_the_killed_task_again(
    deploy, inprocess_engine
):
    rev = deploy(
        f"id: nap\nnamespace: {NS}\ntasks:\n  - id: first\n    type: Return\n"
        "    format: x\n  - id: nap\n    type: Sleep\n"
        "    duration: \"{{ taskrun.attemptsCount == 0 and 'PT30S' or 'PT0.1S' }}\"\n"
    )
    execution = create_execution(rev, actor=Actor.system("test"))
    wait_for(
        lambda: TaskRun.objects.filter(
            execution=execution, task_id="nap", state=State.RUNNING
        ).exists(),
        10,
    )
    kill(execution.pk, actor=Actor("user", "alice"))
    assert wait_state(execution, timeout=10).state == State.KILLED
    restart(execution.pk, actor=Actor(Cause.USER, "alice"))
    done = wait_state(execution, timeout=10)
    assert done.state == State.SUCCESS
    assert attempts(done, "nap") == [(1, "RESTARTED"), (2, "SUCCESS")]
    assert attempts(done, "first") == [(1, "SUCCESS")]


def test_set_labels_is_recorded_with_its_actor(deploy, run_inprocess):
    execution = run_inprocess(deploy(STEPS))
    set_labels(execution.pk, {"reviewed": "yes"}, actor=Actor("api", "dana"))
    assert reload(execution).labels == {
        "reviewed": "yes",
        "system.correlationId": str(execution.pk),
    }
    change = StateChange.objects.filter(execution=execution).order_by("-id").first()
    assert (
        change.from_state,
        change.to_state,
        change.cause,
        change.actor,
        change.reason,
    ) == ("SUCCESS", "SUCCESS", "api", "dana", "labels set: reviewed:yes")


def test_for_each_item_splits_into_partitions_and_skips_blank_lines(
    deploy, inprocess_engine
):
    deploy(BATCH_CHILD)
    uri = save(
        "tests.control/crlf.ion",
        b"".join(b"row %d\r\n" % i for i in range(10)) + b"\r\n",
    )
    rev = deploy(FOR_EACH.replace("rows: 3", "partitions: 3"))
    parent = wait_state(
        create_execution(rev, inputs={"rows": uri}, actor=Actor.system("test"))
    )
    assert parent.state == State.SUCCESS
    batches = [
        read_uri(c.inputs["items"]).decode()
        for c in Execution.objects.filter(parent=parent).order_by("pk")
    ]
    assert [b.count("\n") for b in batches] == [4, 4, 2]
    assert batches[2] == "row 8\nrow 9\n"


# --- restart of child executions -----------------------------------------------------
FLAKY_BATCH = BATCH_CHILD.replace(
    "  - id: got",
    "  - id: boom\n    type: Fail\n"
    '    condition: "{{ inputs.iteration in [2, 3] and taskrun.attemptsCount == 0 }}"\n'
    "  - id: got",
)


def _fan_out_failing_twice(deploy, behavior: str = "") -> Execution:
    deploy(FLAKY_BATCH)
    uri = save("tests.control/twelve.ion", b"".join(b"%d\n" % i for i in range(12)))
    source = FOR_EACH
    if behavior:
        source = source.replace(
            "    batch:", f"    restartBehavior: {behavior}\n    batch:"
        )
    parent = wait_state(
        create_execution(
            deploy(source), inputs={"rows": uri}, actor=Actor.system("test")
        )
    )
    assert parent.state == State.FAILED
    return parent


def _merged_iterations(parent: Execution) -> list[int]:
    import json

    each = parent.taskruns.get(task_id="each")
    return [
        int(json.loads(line)["iteration"])
        for line in read_uri(each.outputs["uri"]).decode().splitlines()
    ]


def test_restart_of_for_each_item_reruns_only_the_failed_batches(deploy, engine):
    parent = _fan_out_failing_twice(deploy)
    children = {
        c.inputs["iteration"]: c for c in Execution.objects.filter(parent=parent)
    }
    assert {i: c.state for i, c in children.items()} == {
        1: State.SUCCESS,
        2: State.FAILED,
        3: State.FAILED,
        4: State.SUCCESS,
    }
    restart(parent.pk, actor=Actor(Cause.USER, "bob"))
    parent = wait_state(parent)
    assert parent.state == State.SUCCESS and parent.attempt == 2
    # The same four child executions: the failed ones ran their failed
    # branch again in place, the successful ones were not touched.
    after = {c.inputs["iteration"]: c for c in Execution.objects.filter(parent=parent)}
    assert {i: c.pk for i, c in after.items()} == {i: c.pk for i, c in children.items()}
    assert {i: (c.state, c.attempt) for i, c in after.items()} == {
        1: (State.SUCCESS, 1),
        2: (State.SUCCESS, 2),
        3: (State.SUCCESS, 2),
        4: (State.SUCCESS, 1),
    }
    assert attempts(after[2], "boom") == [(1, "RESTARTED"), (2, "SUCCESS")]
    assert attempts(after[1], "got") == [(1, "SUCCESS")]
    assert not StateChange.objects.filter(
        execution__in=[after[1], after[4]], to_state="RESTARTED"
    ).exists()
    each = parent.taskruns.get(task_id="each")
    assert (each.state, each.attempt) == (State.SUCCESS, 2)
    assert each.outputs["numberOfBatches"] == 4
    assert each.outputs["iterations"] == {"SUCCESS": 4}
    assert _merged_iterations(parent) == [1, 2, 3, 4]
    assert parent.taskruns.get(task_id="count").outputs == {"value": "4"}


def test_restart_of_for_each_item_with_new_execution_starts_new_children_for_failed_batches(
    deploy, inprocess_engine
):
    parent = _fan_out_failing_twice(deploy, "NEW_EXECUTION")
    before = dict(
        Execution.objects.filter(parent=parent).values_list("inputs__iteration", "pk")
    )
    deploy(BATCH_CHILD)  # the fix: a new revision of the child flow
    restart(parent.pk, actor=Actor(Cause.USER, "bob"))
    parent = wait_state(parent)
    assert parent.state == State.SUCCESS
    rows = list(
        Execution.objects.filter(parent=parent)
        .order_by("pk")
        .values_list("inputs__iteration", "state", "revision")
    )
    # Six children: the four first ones, then one new one per failed batch.
    assert rows[4:] == [(2, State.SUCCESS, 2), (3, State.SUCCESS, 2)]
    assert sorted(rows[:4]) == [
        (1, State.SUCCESS, 1),
        (2, State.FAILED, 1),
        (3, State.FAILED, 1),
        (4, State.SUCCESS, 1),
    ]
    each = parent.taskruns.get(task_id="each")
    assert each.outputs["numberOfBatches"] == 4
    assert each.outputs["iterations"] == {"SUCCESS": 4}
    assert sorted(each.outputs["replaced"]) == [before[2], before[3]]
    assert _merged_iterations(parent) == [1, 2, 3, 4]


FLAKY_CHILD = f"""
id: flaky_child
namespace: {NS}
tasks:
  - id: once
    type: Return
    format: "ran once"
  - id: boom
    type: Fail
    condition: "{{{{ taskrun.attemptsCount == 0 }}}}"
  - id: done
    type: Return
    format: "fixed"
outputs:
  - id: said
    type: STRING
    value: "{{{{ outputs.done.value }}}}"
"""


def test_restart_of_a_subflow_restarts_its_failed_child_in_place(deploy, engine):
    deploy(FLAKY_CHILD)
    rev = deploy(
        f"id: caller\nnamespace: {NS}\ntasks:\n  - id: call\n    type: Subflow\n"
        f"    namespace: {NS}\n    flowId: flaky_child\n"
    )
    parent = wait_state(create_execution(rev, actor=Actor.system("test")))
    assert parent.state == State.FAILED
    child = Execution.objects.get(parent=parent)
    restart(parent.pk, actor=Actor(Cause.USER, "bob"))
    parent = wait_state(parent)
    assert parent.state == State.SUCCESS
    # Still one child: restarted in place (Kestra's RETRY_FAILED default).
    assert Execution.objects.get(parent=parent).pk == child.pk
    child.refresh_from_db()
    assert (child.state, child.attempt) == (State.SUCCESS, 2)
    assert attempts(child, "once") == [(1, "SUCCESS")]
    assert attempts(child, "boom") == [(1, "RESTARTED"), (2, "SUCCESS")]
    change = StateChange.objects.get(
        execution=child, taskrun=None, to_state="RESTARTED"
    )
    assert (change.cause, change.actor) == ("executor", f"execution {parent.pk}")
    call = parent.taskruns.get(task_id="call")
    assert (call.state, call.attempt) == (State.SUCCESS, 2)
    assert call.outputs["executionId"] == child.pk
    assert call.outputs["outputs"] == {"said": "fixed"}


def test_a_bad_restart_behavior_is_refused_with_the_choices(deploy, db):
    from flows.spec import FlowInvalid

    with pytest.raises(
        FlowInvalid, match="restartBehavior must be one of RETRY_FAILED, NEW_EXECUTION"
    ):
        deploy(
            f"id: caller\nnamespace: {NS}\ntasks:\n  - id: call\n    type: Subflow\n"
            f"    namespace: {NS}\n    flowId: x\n    restartBehavior: AGAIN\n"
        )


def test_restart_of_a_for_each_reruns_only_the_failed_iteration(deploy, engine):
    rev = deploy(
        f"""
id: loop_restart
namespace: {NS}
tasks:
  - id: loop
    type: ForEach
    values: ["a", "b", "c", "d"]
    concurrencyLimit: 0
    tasks:
      - id: work
        type: Return
        format: "{{{{ taskrun.value }}}}"
      - id: check
        type: Fail
        condition: "{{{{ taskrun.value == 'c' and taskrun.attemptsCount == 0 }}}}"
"""
    )
    execution = wait_state(create_execution(rev, actor=Actor.system("test")))
    assert execution.state == State.FAILED
    restart(execution.pk, actor=Actor(Cause.USER, "bob"))
    done = wait_state(execution)
    assert done.state == State.SUCCESS
    checks = list(
        done.taskruns.filter(task_id="check")
        .order_by("value", "attempt")
        .values_list("value", "attempt", "state")
    )
    assert checks == [
        ("a", 1, "SUCCESS"),
        ("b", 1, "SUCCESS"),
        ("c", 1, "RESTARTED"),
        ("c", 2, "SUCCESS"),
        ("d", 1, "SUCCESS"),
    ]
    assert done.taskruns.filter(task_id="work").count() == 4


# --- ForEachItem batch.bytes ------------------------------------------------------
def test_for_each_item_batches_by_bytes_without_splitting_rows(
    deploy, inprocess_engine
):
    deploy(BATCH_CHILD)
    rows = ["aaaa", "bbbb", "cccc", "x" * 40, "dd"]
    uri = save("tests.control/sized.ion", "".join(r + "\n" for r in rows).encode())
    rev = deploy(FOR_EACH.replace("rows: 3", "bytes: 10B"))
    parent = wait_state(
        create_execution(rev, inputs={"rows": uri}, actor=Actor.system("test"))
    )
    assert parent.state == State.SUCCESS
    batches = [
        read_uri(c.inputs["items"]).decode().splitlines()
        for c in Execution.objects.filter(parent=parent).order_by("pk")
    ]
    # At most 10 bytes each, whole rows only; a longer row goes alone.
    assert batches == [["aaaa", "bbbb"], ["cccc"], ["x" * 40], ["dd"]]
    assert parent.taskruns.get(task_id="each").outputs["numberOfBatches"] == 4


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ("bytes: 10XB", "'10XB' is not a size; use a number of bytes or a number"),
        ("bytes: 0", "a size must be at least 1 byte"),
        ("bytes: 1MB\n      rows: 2", "give one of batch.rows, batch.partitions or"),
    ],
)
def test_a_bad_batch_size_is_refused_with_the_reason(deploy, db, batch, message):
    from flows.spec import FlowInvalid

    with pytest.raises(FlowInvalid, match=message):
        deploy(FOR_EACH.replace("rows: 3", batch))


def test_a_batch_size_rendered_at_run_time_is_checked_too(deploy, run_inprocess):
    deploy(BATCH_CHILD)
    uri = save("tests.control/one.ion", b"1\n")
    rev = deploy(
        FOR_EACH.replace(
            "rows: 3", "bytes: \"{{ inputs.rows | length > 0 and 'lots' }}\""
        )
    )
    parent = run_inprocess(rev, inputs={"rows": uri})
    assert parent.state == State.FAILED
    each = parent.taskruns.get(task_id="each")
    assert "batch.bytes" in each.error and "'lots' is not a size" in each.error
    assert not Execution.objects.filter(parent=parent).exists()


# --- Subflow / ForEachItem scheduleDate -------------------------------------------
def test_a_subflow_with_a_schedule_date_starts_its_child_at_that_date(deploy, engine):
    deploy(CHILD)
    rev = deploy(
        PARENT.replace(
            "    wait: true\n",
            "    wait: true\n"
            "    scheduleDate: \"{{ now() | dateAdd(3, 'SECONDS') }}\"\n",
        )
    )
    parent = create_execution(rev, inputs={"n": 2}, actor=Actor.system("test"))
    child = wait_for(
        lambda: Execution.objects.filter(parent=parent).first(), 15, interval=0.05
    )
    assert child.state == State.CREATED and child.scheduled_at is not None
    from executions.presenters import execution_as_dict

    shown = execution_as_dict(child, taskruns=False)
    assert shown["scheduledDate"] and shown["startDate"] is None
    time.sleep(1)
    assert reload(child).state == State.CREATED  # not before its date
    assert reload(parent).state == State.RUNNING  # waiting for it
    parent = wait_state(parent, timeout=40)
    assert parent.state == State.SUCCESS
    child = reload(child)
    assert child.state == State.SUCCESS and child.started_at >= child.scheduled_at
    assert parent.taskruns.get(task_id="after").outputs == {"value": "child said 4"}
    created = StateChange.objects.get(execution=child, to_state="CREATED")
    assert "scheduled for" in created.reason


def test_a_scheduled_child_whose_message_was_lost_is_started_by_the_sweep(
    deploy, inprocess_engine
):
    from datetime import timedelta

    from django.utils import timezone

    from executions.engine.liveness import sweep
    from executions.stuck.detect import detect

    rev = deploy(CHILD)
    due = create_execution(
        rev,
        inputs={"n": 1},
        start=False,
        scheduled_at=timezone.now(),
        actor=Actor.system("test"),
    )
    later = create_execution(
        rev,
        inputs={"n": 1},
        start=False,
        scheduled_at=timezone.now() + timedelta(hours=1),
        actor=Actor.system("test"),
    )
    Execution.objects.update(created_at=timezone.now() - timedelta(hours=2))
    time.sleep(1.1)
    # Waiting for its date is not stuck; a due one never started is lost.
    found = detect(older_than_minutes=5, now=timezone.now() + timedelta(minutes=10))
    assert [v.id for v in found.stuck] == [due.pk]
    assert sweep()["scheduled_started"] == 1
    assert wait_state(due).state == State.SUCCESS
    assert reload(later).state == State.CREATED


def test_a_bad_schedule_date_is_refused_or_fails_the_task_with_the_reason(
    deploy, run_inprocess
):
    from flows.spec import FlowInvalid

    deploy(CHILD)
    with pytest.raises(FlowInvalid, match="scheduleDate: 'next tuesday' is not a"):
        deploy(PARENT.replace("    wait: true\n", "    scheduleDate: next tuesday\n"))
    rev = deploy(
        PARENT.replace(
            "    wait: true\n", "    scheduleDate: \"{{ 'soon' ~ inputs.n }}\"\n"
        )
    )
    parent = run_inprocess(rev, inputs={"n": 1})
    assert parent.state == State.FAILED
    assert (
        "scheduleDate: 'soon1' is not a date-time; use ISO 8601"
        in parent.taskruns.get(task_id="call").error
    )
    assert not Execution.objects.filter(parent=parent).exists()
