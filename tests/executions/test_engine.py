"""Every core task type and task property, run by the engine in this process."""

import threading
import time

from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.lifecycle.stop import kill
from executions.models import Cause, State, StateChange


def flow(tasks: str, extra: str = "") -> str:
    return f"id: t\nnamespace: tests.engine\n{extra}tasks:\n{tasks}"


def states_of(execution):
    return {
        (tr.task_id, tr.value, tr.attempt): tr.state for tr in execution.taskruns.all()
    }


def test_it_runs_log_return_echo_outputvalues_with_flow_outputs(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: log\n    type: Log\n    message: ['one {{ inputs.who }}', two]\n"
            "  - id: ret\n    type: io.kestra.plugin.core.debug.Return\n    format: 'hi {{ inputs.who }}'\n"
            "  - id: echo\n    type: Echo\n    format: '{{ outputs.ret.value }}!'\n"
            "  - id: vals\n    type: OutputValues\n    values:\n      a: '{{ outputs.ret.value }}'\n",
            "inputs:\n  - id: who\n    type: STRING\n"
            "outputs:\n  - id: out\n    type: STRING\n    value: '{{ outputs.vals.values.a }}'\n",
        )
    )
    execution = run_inprocess(rev, inputs={"who": "Ada"})
    assert execution.state == State.SUCCESS
    assert execution.outputs == {"out": "hi Ada"}
    messages = list(execution.logs.values_list("message", flat=True))
    assert messages == ["one Ada", "two", "hi Ada!"]


def test_a_failing_task_fails_the_execution_and_runs_errors_then_finally(
    deploy, run_inprocess
):
    rev = deploy(
        flow(
            "  - id: boom\n    type: Fail\n    errorMessage: 'bad {{ inputs.n }}'\n"
            "  - id: never\n    type: Log\n    message: unreachable\n",
            "inputs:\n  - id: n\n    type: INT\n    defaults: 7\n"
            "errors:\n  - id: on_error\n    type: Log\n    message: handling\n"
            "finally:\n  - id: always\n    type: Log\n    message: done\n",
        ).replace("tasks:\n  - id: boom", "tasks:\n  - id: boom", 1)
    )
    execution = run_inprocess(rev)
    assert execution.state == State.FAILED
    assert execution.error == "task 'boom' failed: bad 7"
    assert states_of(execution) == {
        ("boom", None, 1): "FAILED",
        ("on_error", None, 1): "SUCCESS",
        ("always", None, 1): "SUCCESS",
    }


def test_fail_with_a_false_condition_passes(deploy, run_inprocess):
    rev = deploy(flow("  - id: f\n    type: Fail\n    condition: '{{ 1 > 2 }}'\n"))
    assert run_inprocess(rev).state == State.SUCCESS


def test_parallel_runs_branches_at_the_same_time(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: p\n    type: Parallel\n    tasks:\n"
            + "".join(
                f"      - id: s{i}\n        type: Sleep\n        duration: PT0.5S\n"
                for i in range(4)
            )
        )
    )
    started = time.monotonic()
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS
    assert (
        time.monotonic() - started < 1.8
    )  # 4 × 0.5 s one after the other would be 2 s


def test_parallel_concurrent_limit_and_sequential(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: p\n    type: Parallel\n    concurrent: 1\n    tasks:\n"
            "      - id: a\n        type: Sleep\n        duration: PT0.2S\n"
            "      - id: seq\n        type: Sequential\n        tasks:\n"
            "          - id: b\n            type: Return\n            format: b\n"
            "          - id: c\n            type: Return\n            format: '{{ outputs.b.value }}c'\n"
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS
    runs = {tr.task_id: tr for tr in execution.taskruns.all()}
    assert runs["b"].started_at >= runs["a"].ended_at  # the limit held
    assert runs["c"].outputs == {"value": "bc"}


def test_if_and_switch_choose_branches(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: cond\n    type: If\n    condition: '{{ inputs.n > 5 }}'\n"
            "    then:\n      - id: big\n        type: Return\n        format: big\n"
            "    else:\n      - id: small\n        type: Return\n        format: small\n"
            "  - id: sw\n    type: Switch\n    value: '{{ inputs.env }}'\n"
            "    cases:\n      prod:\n        - id: p\n          type: Return\n          format: p\n"
            "    defaults:\n      - id: other\n        type: Return\n        format: other\n",
            "inputs:\n  - id: n\n    type: INT\n  - id: env\n    type: STRING\n",
        )
    )
    first = run_inprocess(rev, inputs={"n": 9, "env": "prod"})
    assert set(t for t, _, _ in states_of(first)) == {"cond", "big", "sw", "p"}
    second = run_inprocess(rev, inputs={"n": 1, "env": "dev"})
    assert set(t for t, _, _ in states_of(second)) == {"cond", "small", "sw", "other"}


def test_foreach_runs_once_per_value_with_the_concurrency_limit(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: each\n    type: ForEach\n    values: '{{ inputs.items }}'\n    concurrencyLimit: 2\n"
            "    tasks:\n      - id: work\n        type: Sleep\n        duration: PT0.3S\n"
            "      - id: name\n        type: Return\n        format: 'v={{ taskrun.value }}'\n"
            "  - id: after\n    type: Return\n    format: '{{ outputs.name[\"b\"].value }}'\n",
            "inputs:\n  - id: items\n    type: ARRAY\n",
        )
    )
    execution = run_inprocess(rev, inputs={"items": '["a", "b", "c", "d"]'})
    assert execution.state == State.SUCCESS
    works = sorted(
        execution.taskruns.filter(task_id="work"), key=lambda t: t.started_at
    )
    assert sorted(w.value for w in works) == ["a", "b", "c", "d"]
    # Never more than two iterations at once (at any start, count what runs).
    for w in works:
        running = [o for o in works if o.started_at <= w.started_at < o.ended_at]
        assert len(running) <= 2
    assert works[2].started_at >= min(works[0].ended_at, works[1].ended_at)
    assert execution.taskruns.get(task_id="after").outputs == {"value": "v=b"}


def test_outputs_are_read_when_expressions_need_them_in_tasks_and_flowables(
    deploy, run_inprocess
):
    # Outputs are loaded lazily, task by task: the executor's If inside a loop,
    # a task reading the whole map and a retried task's latest attempt.
    rev = deploy(
        flow(
            "  - id: loop\n    type: ForEach\n    values: [a, b]\n    tasks:\n"
            "      - id: v\n        type: Return\n        format: '{{ taskrun.value }}'\n"
            "      - id: check\n        type: If\n"
            "        condition: \"{{ outputs.v[taskrun.value].value == 'b' }}\"\n"
            "        then:\n          - id: seen\n            type: Return\n"
            "            format: \"b after {{ outputs.v['a'].value }}\"\n"
            "  - id: flaky\n    type: Fail\n"
            "    condition: '{{ taskrun.attemptsCount == 0 }}'\n"
            "    retry:\n      type: constant\n      interval: PT0.1S\n      maxAttempt: 2\n"
            "  - id: all\n    type: Return\n"
            "    format: \"{{ outputs | keys | sort | join(',') }} {{ outputs.v | json }}\"\n"
            "  - id: missing\n    type: Return\n"
            "    format: \"{{ 'nothing' in outputs }} {{ outputs.seen | length }}\"\n"
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS
    assert [tr.value for tr in execution.taskruns.filter(task_id="seen")] == ["b"]
    assert execution.taskruns.get(task_id="seen").outputs == {"value": "b after a"}
    assert execution.taskruns.get(task_id="all").outputs == {
        "value": 'check,flaky,loop,seen,v {"a": {"value": "a"}, "b": {"value": "b"}}'
    }
    assert execution.taskruns.get(task_id="missing").outputs == {"value": "false 1"}


def test_each_sequential_and_each_parallel_aliases(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: seq\n    type: EachSequential\n    value: [1, 2]\n    tasks:\n"
            "      - id: s\n        type: Return\n        format: '{{ taskrun.value }}'\n"
            '  - id: par\n    type: EachParallel\n    value: \'["x", "y"]\'\n    tasks:\n'
            "      - id: inner\n        type: EachSequential\n        value: [1, 2]\n        tasks:\n"
            "          - id: p\n            type: Return\n"
            "            format: '{{ parent.taskrun.value }}-{{ taskrun.value }}'\n"
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS
    assert sorted(tr.value for tr in execution.taskruns.filter(task_id="s")) == [
        "1",
        "2",
    ]
    assert sorted(
        tr.outputs["value"] for tr in execution.taskruns.filter(task_id="p")
    ) == ["x-1", "x-2", "y-1", "y-2"]


def test_allow_failure_turns_a_failure_into_a_warning(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: af\n    type: AllowFailure\n    tasks:\n      - id: f\n        type: Fail\n"
            "  - id: prop\n    type: Fail\n    allowFailure: true\n"
            "  - id: next\n    type: Log\n    message: still running\n"
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.WARNING
    assert execution.taskruns.get(task_id="next").state == State.SUCCESS


def test_warning_logs_make_a_warning_unless_allow_warning(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: w\n    type: Log\n    level: WARN\n    message: careful\n"
            "  - id: w2\n    type: Log\n    level: WARN\n    message: fine\n    allowWarning: true\n"
        )
    )
    execution = run_inprocess(rev)
    assert execution.taskruns.get(task_id="w").state == State.WARNING
    assert execution.taskruns.get(task_id="w2").state == State.SUCCESS
    assert execution.state == State.WARNING


def test_disabled_and_run_if_skip_tasks(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: off\n    type: Fail\n    disabled: true\n"
            "  - id: skipped\n    type: Fail\n    runIf: '{{ inputs.go }}'\n"
            "  - id: ran\n    type: Return\n    format: x\n    runIf: '{{ not inputs.go }}'\n",
            "inputs:\n  - id: go\n    type: BOOLEAN\n    defaults: false\n",
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS
    assert states_of(execution) == {
        ("skipped", None, 1): "SKIPPED",
        ("ran", None, 1): "SUCCESS",
    }


def test_retry_runs_new_attempts_until_max_attempt(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: flaky\n    type: Fail\n    condition: '{{ taskrun.attemptsCount < 2 }}'\n"
            "    retry:\n      type: constant\n      interval: PT0.1S\n      maxAttempt: 3\n"
            "  - id: hopeless\n    type: Fail\n    allowFailure: true\n"
            "    retry:\n      type: io.kestra.plugin.core.retry.Exponential\n      interval: PT0.05S\n"
            "      maxDelay: PT0.1S\n      maxAttempt: 2\n"
        )
    )
    execution = run_inprocess(rev)
    assert states_of(execution) == {
        ("flaky", None, 1): "FAILED",
        ("flaky", None, 2): "FAILED",
        ("flaky", None, 3): "SUCCESS",
        ("hopeless", None, 1): "FAILED",
        # Kestra's Worker: the last attempt of a task allowed to fail is WARNING.
        ("hopeless", None, 2): "WARNING",
    }
    assert execution.state == State.WARNING


def test_timeout_fails_a_task_that_runs_too_long(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: slow\n    type: Sleep\n    duration: PT10S\n    timeout: PT0.5S\n"
        )
    )
    started = time.monotonic()
    execution = run_inprocess(rev)
    assert time.monotonic() - started < 5
    tr = execution.taskruns.get()
    assert (tr.state, tr.error) == ("FAILED", "timed out after PT0.5S")


def test_labels_task_sets_execution_labels(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: lab\n    type: Labels\n    labels:\n      team: '{{ inputs.team }}'\n",
            "labels:\n  env: dev\ninputs:\n  - id: team\n    type: STRING\n",
        )
    )
    execution = run_inprocess(rev, inputs={"team": "data"})
    assert execution.labels == {
        "env": "dev",
        "team": "data",
        "system.correlationId": str(execution.pk),
    }


def test_a_bad_expression_at_run_time_fails_the_task_with_the_reason(
    deploy, run_inprocess
):
    rev = deploy(
        flow("  - id: r\n    type: Return\n    format: '{{ outputs.nothing.value }}'\n")
    )
    execution = run_inprocess(rev)
    tr = execution.taskruns.get()
    assert tr.state == State.FAILED
    assert "'nothing' is not defined" in tr.error


def test_kill_stops_a_sleeping_execution_and_records_who(deploy, transactional_db):
    from executions.engine.inprocess import use_in_process

    rev = deploy(
        flow(
            "  - id: nap\n    type: Sleep\n    duration: PT30S\n"
            "  - id: after\n    type: Log\n    message: never\n"
        )
    )
    with use_in_process() as runner:
        execution = create_execution(rev, actor=Actor.system("test"))
        deadline = time.monotonic() + 10
        while not execution.taskruns.filter(state=State.RUNNING).exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        kill(execution.pk, reason="wrong input", actor=Actor(Cause.USER, "alice"))
        while True:
            execution.refresh_from_db()
            if execution.is_terminal and runner.idle():
                break
            assert time.monotonic() < deadline + 5
            time.sleep(0.05)
    assert execution.state == State.KILLED
    assert states_of(execution) == {("nap", None, 1): "KILLED"}
    change = StateChange.objects.get(execution=execution, to_state="KILLING")
    assert (change.cause, change.actor, change.reason) == (
        "user",
        "alice",
        "wrong input",
    )
    assert StateChange.objects.filter(
        execution=execution, to_state="KILLED", taskrun=None
    ).exists()


def test_every_execution_state_change_has_a_history_row(deploy, run_inprocess):
    rev = deploy(flow("  - id: a\n    type: Return\n    format: x\n"))
    execution = run_inprocess(rev)
    rows = list(
        StateChange.objects.filter(execution=execution, taskrun=None).values_list(
            "from_state", "to_state", "cause"
        )
    )
    assert rows == [
        ("", "CREATED", "system"),
        ("CREATED", "RUNNING", "executor"),
        ("RUNNING", "SUCCESS", "executor"),
    ]


def test_advance_is_idempotent(deploy, transactional_db):
    from executions.engine.executor import advance

    rev = deploy(flow("  - id: a\n    type: Return\n    format: x\n"))
    execution = create_execution(rev, start=False, actor=Actor.system("test"))
    first = advance(execution.pk)
    second = advance(execution.pk)
    assert len(first) == 1 and second == []
    assert execution.taskruns.count() == 1


def test_concurrent_advances_never_duplicate_task_runs(deploy, transactional_db):
    from django.db import connection

    from executions.engine.executor import advance

    rev = deploy(
        flow(
            "  - id: p\n    type: Parallel\n    tasks:\n"
            + "".join(
                f"      - id: t{i}\n        type: Return\n        format: x\n"
                for i in range(5)
            )
        )
    )
    execution = create_execution(rev, start=False, actor=Actor.system("test"))

    def go():
        try:
            advance(execution.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert execution.taskruns.filter(flowable=False).count() == 5


def test_flow_outputs_take_their_declared_type(deploy, run_inprocess):
    outputs = (
        "outputs:\n  - id: n\n    type: INT\n    value: '{{ outputs.r.value }}'\n"
        "  - id: j\n    type: JSON\n    value: '{\"k\": {{ outputs.r.value }}}'\n"
    )
    rev = deploy(flow("  - id: r\n    type: Return\n    format: '42'\n", outputs))
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS
    assert execution.outputs == {"n": 42, "j": {"k": 42}}

    rev = deploy(
        flow("  - id: r\n    type: Return\n    format: 'forty-two'\n", outputs)
    )
    execution = run_inprocess(rev)
    assert execution.state == State.FAILED
    assert (
        execution.error
        == "flow outputs: output 'n': expected an integer, got 'forty-two'"
    )
    change = StateChange.objects.get(
        execution=execution, taskrun=None, to_state=State.FAILED
    )
    assert change.reason == execution.error
