"""``orchestra flows execute`` and ``executions list|get|logs|kill`` against a
real Celery worker (SQLite + local broker, or PostgreSQL + Redis in CI)."""

from __future__ import annotations

import json
import re
import subprocess

from executions.models import Execution, State, StateChange, TaskRun
from tests.conftest import wait_for

GREET = """\
id: greet
namespace: tests.cli
inputs:
  - id: who
    type: STRING
  - id: tags
    type: ARRAY
    itemType: STRING
    defaults: '[]'
tasks:
  - id: hello
    type: Log
    message: "hello {{ inputs.who }}"
  - id: count
    type: Return
    format: "{{ inputs.tags | length }}"
outputs:
  - id: greeting
    type: STRING
    value: "hello {{ inputs.who }} ({{ outputs.count.value }} tags)"
"""

FAILING = """\
id: failing
namespace: tests.cli
tasks:
  - id: first
    type: Log
    message: starting
  - id: boom
    type: Fail
    errorMessage: "no data for {{ execution.id }}"
"""

SLOW = """\
id: slow
namespace: tests.cli
tasks:
  - id: nap
    type: Sleep
    duration: PT30S
"""


def test_execute_wait_shows_progress_and_exits_0_on_success(
    deploy, start_worker, cli_on_test_db
):
    deploy(GREET)
    start_worker("w1")
    r = cli_on_test_db(
        "flows",
        "execute",
        "--namespace",
        "tests.cli",
        "--flow",
        "greet",
        "--input",
        "who=Ada",
        "--input",
        'tags=["a", "b"]',
        "--label",
        "team=data",
        "--wait",
    )
    assert r.code == 0, r
    execution_id = int(re.search(r"Execution (\d+) of tests.cli.greet", r.out).group(1))
    # Progress is polled: a fast task may show only its end, never its start.
    assert "✔ hello SUCCESS" in r.out and "✔ count SUCCESS" in r.out
    assert r.out.index("✔ hello SUCCESS") < r.out.index("✔ count SUCCESS")
    assert f"Execution {execution_id} ended SUCCESS" in r.out
    assert "greeting: hello Ada (2 tags)" in r.out
    execution = Execution.objects.get(pk=execution_id)
    assert execution.labels["team"] == "data"
    created = StateChange.objects.get(execution=execution, taskrun=None, from_state="")
    assert created.cause == "cli"


def test_execute_wait_exits_1_when_the_execution_fails(
    deploy, start_worker, cli_on_test_db
):
    deploy(FAILING)
    start_worker("w1")
    r = cli_on_test_db("flows", "execute", "-n", "tests.cli", "-f", "failing", "--wait")
    assert r.code == 1, r
    assert "✔ first SUCCESS" in r.out and "✘ boom FAILED" in r.out
    assert re.search(r"Execution \d+ ended FAILED", r.out)
    assert "task 'boom' failed: no data for" in r.out


def test_execute_wait_json_prints_the_final_execution(
    deploy, start_worker, cli_on_test_db
):
    deploy(GREET)
    start_worker("w1")
    r = cli_on_test_db(
        "flows",
        "execute",
        "-n",
        "tests.cli",
        "-f",
        "greet",
        "-i",
        "who=Bo",
        "--wait",
        "--json",
    )
    assert r.code == 0, r
    data = json.loads(r.out)
    assert data["state"] == "SUCCESS"
    assert data["outputs"] == {"greeting": "hello Bo (0 tags)"}
    assert [(t["taskId"], t["state"]) for t in data["taskRuns"]] == [
        ("hello", "SUCCESS"),
        ("count", "SUCCESS"),
    ]
    assert data["taskRuns"][1]["outputs"] == {"value": "0"}


def test_execute_rejects_bad_input_and_unknown_flows(deploy, cli_on_test_db):
    deploy(GREET)
    r = cli_on_test_db(
        "flows", "execute", "-n", "tests.cli", "-f", "greet", "-i", "tags=[1"
    )
    assert r.code == 2, r
    assert "✘ input 'who': required STRING input is missing" in r.err
    assert "✘ input 'tags': not valid JSON" in r.err
    r = cli_on_test_db("flows", "execute", "-n", "tests.cli", "-f", "gret")
    assert r.code == 1, r
    assert "flow tests.cli.gret does not exist. Flows in tests.cli: greet" in r.err
    assert not Execution.objects.exists()


def test_executions_list_get_logs(deploy, start_worker, cli_on_test_db):
    deploy(GREET)
    deploy(FAILING)
    start_worker("w1")
    assert (
        cli_on_test_db(
            "flows",
            "execute",
            "-n",
            "tests.cli",
            "-f",
            "greet",
            "-i",
            "who=Cy",
            "--wait",
        ).code
        == 0
    )
    assert (
        cli_on_test_db(
            "flows", "execute", "-n", "tests.cli", "-f", "failing", "--wait"
        ).code
        == 1
    )
    ok = Execution.objects.get(flow_id="greet")
    bad = Execution.objects.get(flow_id="failing")

    listed = cli_on_test_db("executions", "list")
    assert listed.code == 0, listed
    rows = [line.split() for line in listed.out.splitlines()[2:]]
    assert [(int(r[0]), r[2], r[3]) for r in rows] == [
        (bad.pk, "failing", "FAILED"),
        (ok.pk, "greet", "SUCCESS"),
    ]
    failed = json.loads(
        cli_on_test_db("executions", "list", "--state", "failed", "--json").out
    )
    assert [e["id"] for e in failed] == [bad.pk]

    got = cli_on_test_db("executions", "get", str(ok.pk))
    assert got.code == 0, got
    assert (
        "state:   SUCCESS" in got.out and '"greeting": "hello Cy (0 tags)"' in got.out
    )
    assert re.search(r"\bcount\s+1\s+SUCCESS", got.out)
    assert (
        json.loads(cli_on_test_db("executions", "get", str(bad.pk), "--json").out)[
            "state"
        ]
        == "FAILED"
    )
    missing = cli_on_test_db("executions", "get", "999999")
    assert missing.code == 1 and "execution 999999 does not exist" in missing.err

    logs = cli_on_test_db("executions", "logs", str(ok.pk))
    assert re.search(r"INFO  \[hello\] hello Cy", logs.out), logs
    errors = cli_on_test_db(
        "executions", "logs", str(bad.pk), "--level", "ERROR", "--json"
    )
    entries = [json.loads(line) for line in errors.out.splitlines()]
    assert entries and all(e["level"] == "ERROR" for e in entries)
    assert any(e["taskId"] == "boom" and "no data for" in e["message"] for e in entries)


def test_kill_stops_a_running_execution_and_logs_follow_ends(
    deploy, start_worker, cli_on_test_db
):
    deploy(SLOW)
    start_worker("w1")
    r = cli_on_test_db("flows", "execute", "-n", "tests.cli", "-f", "slow", "--json")
    assert r.code == 0, r
    execution_id = json.loads(r.out)["id"]
    wait_for(
        lambda: TaskRun.objects.filter(
            execution_id=execution_id, state=State.RUNNING, flowable=False
        ).exists(),
        30,
        what="the task to start",
    )
    follow = cli_on_test_db.popen(
        "executions",
        "logs",
        str(execution_id),
        "--follow",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    killed = cli_on_test_db(
        "executions", "kill", str(execution_id), "--reason", "no longer needed"
    )
    assert killed.code == 0, killed
    assert re.match(rf"Execution {execution_id} is (KILLING|KILLED)\.", killed.out)
    out, err = follow.communicate(timeout=30)
    assert follow.returncode == 0, err
    assert f"-- execution {execution_id} ended KILLED" in out
    execution = Execution.objects.get(pk=execution_id)
    assert execution.state == State.KILLED
    change = StateChange.objects.filter(execution=execution, taskrun=None).order_by(
        "id"
    )[2]
    assert (change.to_state, change.cause, change.reason) == (
        "KILLING",
        "cli",
        "no longer needed",
    )
    again = cli_on_test_db("executions", "kill", str(execution_id))
    assert again.code == 1 and "already ended (KILLED)" in again.err
