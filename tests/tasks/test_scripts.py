"""Script tasks: real processes in a working folder, streamed logs, outputs,
files, failures, timeout and kill reaching the whole process group."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

from executions.engine.context import working_dir
from executions.engine.inprocess import use_in_process
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.lifecycle.stop import kill
from executions.models import Cause, Execution, LogEntry, State
from executions.storage import read_uri
from flows.spec import parse_flow
from tests.conftest import wait_for
from tests.tasks.helpers import flow, indent, pids_with_env, wait_all_gone

PY_SCRIPT = """
import json, os, sys
print("reading", open("data/in.txt").read().strip())
print("env", os.environ["GREETING"], os.environ.get("DATABASE_URL", "hidden"))
print("before", open("before.txt").read().strip())
print("oops", file=sys.stderr)
os.makedirs("out")
with open("out/result.csv", "w") as handle:
    handle.write("a,b\\n1,2\\n")
print('::' + json.dumps({"outputs": {"total": 42, "name": "{{ inputs.who }}"}}) + '::')
"""


def test_a_python_script_gets_files_env_and_returns_vars_and_output_files(
    deploy, run_inprocess
):
    rev = deploy(
        flow(
            "  - id: py\n    type: io.kestra.plugin.scripts.python.Script\n"
            "    beforeCommands:\n      - echo ready > before.txt\n"
            "    env:\n      GREETING: hello\n"
            "    inputFiles:\n      data/in.txt: 'content for {{ inputs.who }}'\n"
            "    outputFiles:\n      - 'out/*.csv'\n"
            "    warningOnStdErr: false\n"
            "    script: |\n"
            + indent(PY_SCRIPT.strip(), 6)
            + "  - id: show\n    type: Log\n"
            "    message: \"{{ outputs.py.vars.total }} {{ read(outputs.py.outputFiles['out/result.csv']) | trim }}\"\n",
            "inputs:\n  - id: who\n    type: STRING\n    defaults: Ada\n",
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS, execution.taskruns.values_list(
        "error", flat=True
    )
    py = execution.taskruns.get(task_id="py")
    assert py.outputs["exitCode"] == 0
    assert py.outputs["vars"] == {"total": 42, "name": "Ada"}
    uri = py.outputs["outputFiles"]["out/result.csv"]
    assert uri.startswith("kestra:///tests.tasks/t/executions/")
    assert read_uri(uri) == b"a,b\n1,2\n"
    logs = list(execution.logs.filter(task_id="py").values_list("level", "message"))
    assert ("INFO", "reading content for Ada") in logs
    # The worker's own settings never reach user code.
    assert ("INFO", "env hello hidden") in logs
    assert ("INFO", "before ready") in logs
    assert ("WARN", "oops") in logs
    assert not any("::" in message for _, message in logs)
    assert execution.logs.filter(task_id="show", message="42 a,b\n1,2").exists()


def test_lines_reach_the_logs_while_the_process_still_runs(deploy, transactional_db):
    rev = deploy(
        flow(
            "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Commands\n"
            "    commands:\n"
            "      - echo first\n"
            "      - 'while [ ! -e go ]; do sleep 0.05; done'\n"
            "      - echo second\n"
        )
    )
    with use_in_process():
        execution = create_execution(rev, actor=Actor.system("test"))
        wait_for(
            lambda: LogEntry.objects.filter(
                execution=execution, message="first"
            ).exists(),
            15,
            what="the first line in the logs",
        )
        # The process is still waiting for the marker: 'second' was not printed yet.
        assert not LogEntry.objects.filter(
            execution=execution, message="second"
        ).exists()
        assert Execution.objects.get(pk=execution.pk).state == State.RUNNING
        # The script sees only its working folder: the marker goes there.
        tr = execution.taskruns.get(task_id="sh")
        (Path(working_dir(execution.pk, tr.pk)) / "go").touch()
        wait_for(
            lambda: Execution.objects.get(pk=execution.pk).is_terminal,
            15,
            what="execution to end",
        )
    execution.refresh_from_db()
    assert execution.state == State.SUCCESS
    assert list(execution.logs.values_list("message", flat=True))[:2] == [
        "first",
        "second",
    ]


def test_a_non_zero_exit_fails_with_the_end_of_stderr(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: py\n    type: io.kestra.plugin.scripts.python.Commands\n"
            "    commands:\n"
            "      - python -c \"import sys; print('bad row 7', file=sys.stderr); sys.exit(3)\"\n"
            "  - id: never\n    type: Log\n    message: unreachable\n"
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.FAILED
    tr = execution.taskruns.get(task_id="py")
    assert tr.state == State.FAILED
    assert "exited with code 3" in tr.error and "bad row 7" in tr.error
    assert not execution.taskruns.filter(task_id="never").exists()


def test_before_commands_failing_stop_the_script(deploy, run_inprocess):
    rev = deploy(
        flow(
            "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Script\n"
            "    beforeCommands: ['false']\n"
            "    script: echo should-not-run\n"
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.FAILED
    assert not execution.logs.filter(message="should-not-run").exists()


def _grandchild_flow(marker: str, extra: str = "") -> str:
    """A script that leaves a background process; every process of it carries
    ``marker`` in its environment (see pids_with_env)."""
    return flow(
        "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        + extra
        + f"    env:\n      TEST_MARKER: {marker}\n"
        + "    commands:\n"
        "      - sh -c 'sleep 300' &\n"
        "      - echo started\n"
        "      - sleep 300\n"
    )


def _marker() -> str:
    return f"orchestra-test-{uuid.uuid4().hex}"


def test_a_timeout_ends_the_whole_process_group(deploy, transactional_db):
    marker = _marker()
    rev = deploy(_grandchild_flow(marker, "    timeout: PT3S\n"))
    with use_in_process() as runner:
        execution = create_execution(rev, actor=Actor.system("test"))
        wait_for(
            lambda: LogEntry.objects.filter(
                execution=execution, message="started"
            ).exists(),
            15,
            what="the script to start",
        )
        pids = pids_with_env(marker)
        wait_for(
            lambda: (
                Execution.objects.get(pk=execution.pk).is_terminal and runner.idle()
            ),
            15,
            what="the timeout to end the run",
        )
    execution.refresh_from_db()
    assert execution.state == State.FAILED
    tr = execution.taskruns.get(task_id="sh")
    assert tr.error.startswith("timed out")
    assert len(pids) >= 2  # the shell and its background sleep at least
    assert not wait_all_gone(pids), "processes of the script survived the timeout"


def test_a_kill_ends_the_whole_process_group(deploy, transactional_db):
    marker = _marker()
    rev = deploy(_grandchild_flow(marker))
    with use_in_process() as runner:
        execution = create_execution(rev, actor=Actor.system("test"))
        wait_for(
            lambda: LogEntry.objects.filter(
                execution=execution, message="started"
            ).exists(),
            15,
            what="the script to start",
        )
        pids = pids_with_env(marker)
        kill(execution.pk, reason="test", actor=Actor(Cause.USER, "alice"))
        wait_for(
            lambda: (
                Execution.objects.get(pk=execution.pk).is_terminal and runner.idle()
            ),
            15,
            what="execution to be killed",
        )
    execution.refresh_from_db()
    assert execution.state == State.KILLED
    assert len(pids) >= 2
    left = wait_all_gone(pids)
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # tidy up before failing
    assert not left, "processes of the script survived the kill"


def test_container_options_are_accepted_with_a_warning_never_silently(
    deploy, run_inprocess
):
    source = flow(
        "  - id: py\n    type: io.kestra.plugin.scripts.python.Script\n"
        "    containerImage: python:3.11-slim\n"
        "    taskRunner:\n      type: io.kestra.plugin.scripts.runner.docker.Docker\n"
        "    script: print('hi')\n"
    )
    spec = parse_flow(source)
    assert any("python:3.11-slim" in w and "not used" in w for w in spec.warnings)
    assert any("docker.Docker" in w for w in spec.warnings)
    execution = run_inprocess(deploy(source))
    # The run itself is fine: the warning is reported, the state stays SUCCESS.
    assert execution.state == State.SUCCESS
    warnings = list(
        execution.logs.filter(level="WARN").values_list("message", flat=True)
    )
    assert any("containers are not used here" in w for w in warnings)
    assert execution.logs.filter(message="hi").exists()


def test_input_files_from_another_execution_are_refused(deploy, run_inprocess):
    first = run_inprocess(
        deploy(
            flow(
                "  - id: py\n    type: io.kestra.plugin.scripts.shell.Commands\n"
                "    outputFiles: [secret.txt]\n    commands: ['echo s3cret > secret.txt']\n",
                flow_id="owner",
            )
        )
    )
    uri = first.taskruns.get(task_id="py").outputs["outputFiles"]["secret.txt"]
    rev = deploy(
        flow(
            "  - id: py\n    type: io.kestra.plugin.scripts.shell.Commands\n"
            f"    inputFiles:\n      stolen.txt: '{uri}'\n    commands: ['cat stolen.txt']\n",
            flow_id="thief",
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.FAILED
    assert "does not belong to execution" in execution.taskruns.get(task_id="py").error
    assert not execution.logs.filter(message="s3cret").exists()


def test_a_kill_reaches_a_script_on_a_real_worker_process(deploy, celery_worker):
    marker = _marker()
    rev = deploy(_grandchild_flow(marker))
    execution = create_execution(rev, actor=Actor.system("test"))
    wait_for(
        lambda: LogEntry.objects.filter(
            execution=execution, message="started"
        ).exists(),
        30,
        what="the script to start on the worker",
    )
    pids = pids_with_env(marker)
    kill(execution.pk, reason="test", actor=Actor(Cause.USER, "alice"))
    wait_for(
        lambda: Execution.objects.get(pk=execution.pk).is_terminal,
        30,
        what="execution to be killed",
    )
    assert Execution.objects.get(pk=execution.pk).state == State.KILLED
    assert len(pids) >= 2
    assert not wait_all_gone(pids), "processes of the script survived the kill"


def test_stderr_is_logged_and_turns_the_run_warning_only_on_request(
    deploy, run_inprocess
):
    task = (
        "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "{extra}    commands: ['echo careful >&2']\n"
    )
    quiet = run_inprocess(deploy(flow(task.format(extra=""))))
    assert quiet.state == State.SUCCESS
    assert quiet.logs.filter(level="WARN", message="careful").exists()
    loud = run_inprocess(deploy(flow(task.format(extra="    warningOnStdErr: true\n"))))
    assert loud.state == State.WARNING


def test_files_outside_the_working_folder_are_refused(deploy, run_inprocess):
    inside = run_inprocess(
        deploy(
            flow(
                "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Commands\n"
                "    inputFiles:\n      ../escape.txt: nope\n    commands: ['true']\n"
            )
        )
    )
    assert inside.state == State.FAILED
    assert (
        "'../escape.txt' must be a relative path"
        in inside.taskruns.get(task_id="sh").error
    )
    out = run_inprocess(
        deploy(
            flow(
                "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Commands\n"
                "    outputFiles: ['/etc/*']\n    commands: ['true']\n"
            )
        )
    )
    assert (
        "outputFiles: '/etc/*' must be a relative path"
        in out.taskruns.get(task_id="sh").error
    )


def test_a_script_does_not_outlive_a_worker_that_dies(deploy, start_worker):
    marker = _marker()
    worker = start_worker("w1")
    rev = deploy(_grandchild_flow(marker))
    execution = create_execution(rev, actor=Actor.system("test"))
    wait_for(
        lambda: LogEntry.objects.filter(
            execution=execution, message="started"
        ).exists(),
        30,
        what="the script to start on the worker",
    )
    pids = pids_with_env(marker)
    worker.sigkill()  # the worker's own process group; the script runs in another one
    assert len(pids) >= 2
    assert not wait_all_gone(pids), "processes of the script outlived their worker"


def test_commands_may_name_the_working_folder(deploy, run_inprocess):
    execution = run_inprocess(
        deploy(
            flow(
                "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Commands\n"
                "    outputFiles: [where.txt]\n"
                "    commands: ['pwd > {{ workingDir }}/where.txt', 'echo \"$WORKING_DIR\"']\n"
            )
        )
    )
    assert execution.state == State.SUCCESS, execution.taskruns.values_list(
        "error", flat=True
    )
    tr = execution.taskruns.get(task_id="sh")
    folder = read_uri(tr.outputs["outputFiles"]["where.txt"]).decode().strip()
    assert folder == working_dir(execution.pk, tr.pk)
    assert execution.logs.filter(message=folder).exists()
    assert not os.path.exists(folder)  # removed after the run


def test_an_interpreter_can_be_chosen(deploy, run_inprocess):
    execution = run_inprocess(
        deploy(
            flow(
                "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Script\n"
                "    interpreter: [/bin/bash, -c]\n"
                '    script: |\n      words=(one two)\n      echo "${#words[@]} ${words[1]}"\n'
            )
        )
    )
    assert execution.state == State.SUCCESS, execution.taskruns.values_list(
        "error", flat=True
    )
    assert execution.logs.filter(message="2 two").exists()


def test_a_nul_in_output_vars_does_not_leave_the_run_unrecorded(deploy, run_inprocess):
    """PostgreSQL cannot store NUL in JSON: the run must still end."""
    execution = run_inprocess(
        deploy(
            flow(
                "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Commands\n"
                "    commands: ['echo ''::{\"outputs\": {\"a\\\\u0000b\": \"x\\\\u0000y\"}}::''']\n"
            )
        )
    )
    assert execution.state == State.SUCCESS, execution.taskruns.values_list(
        "error", flat=True
    )
    assert execution.taskruns.get(task_id="sh").outputs["vars"] == {"ab": "xy"}
