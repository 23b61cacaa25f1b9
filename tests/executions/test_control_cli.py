"""`orchestra executions restart|replay|resume|get` and the sweep that wakes
an overdue pause."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.lifecycle.stop import kill
from executions.models import (
    Execution,
    State,
    StateChange,
    TaskRun,
    Worker,
    WorkerState,
)
from orchestra.cli import main
from tests.executions.test_control import (
    APPROVAL,
    CHILD,
    DELAYED,
    FLAKY,
    PARENT,
    STEPS,
    inprocess_engine,  # noqa: F401  (fixture)
    wait_state,
)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("inprocess_engine")
def test_get_shows_parent_and_child_links_both_ways(deploy, capsys):
    deploy(CHILD)
    parent = wait_state(
        create_execution(deploy(PARENT), inputs={"n": 2}, actor=Actor.system("test"))
    )
    child = Execution.objects.get(parent=parent)
    code, out, _ = cli(capsys, "executions", "get", str(parent.pk))
    assert code == 0
    assert f"children: #{child.pk} tests.control.child SUCCESS" in out
    code, out, _ = cli(capsys, "executions", "get", str(child.pk))
    assert f"parent:  #{parent.pk} tests.control.parent SUCCESS (task call)" in out
    code, out, _ = cli(capsys, "executions", "get", str(child.pk), "--json")
    data = json.loads(out)
    assert data["parent"]["id"] == parent.pk and data["parent"]["taskId"] == "call"
    assert data["parentTaskRunId"] == parent.taskruns.get(task_id="call").pk


@pytest.mark.usefixtures("inprocess_engine")
def test_resume_from_the_cli_checks_the_inputs(deploy, capsys):
    execution = create_execution(deploy(APPROVAL), actor=Actor.system("test"))
    wait_state(execution, State.PAUSED, timeout=10)
    # No answer at all: the required yes/no is asked for, not taken as "no".
    code, out, err = cli(capsys, "executions", "resume", str(execution.pk))
    assert code == 2 and out == ""
    assert "✘ input 'approved': required BOOLEAN input is missing" in err
    assert Execution.objects.get(pk=execution.pk).state == State.PAUSED
    code, _, err = cli(
        capsys, "executions", "resume", str(execution.pk), "--input", "approved=perhaps"
    )
    assert code == 2
    assert "✘ input 'approved': expected true or false, got 'perhaps'" in err
    assert Execution.objects.get(pk=execution.pk).state == State.PAUSED
    code, out, _ = cli(
        capsys,
        "executions",
        "resume",
        str(execution.pk),
        "-i",
        "approved=yes",
        "-i",
        "comment=ship it",
        "--reason",
        "release call",
    )
    assert code == 0 and f"Execution {execution.pk} resumed" in out
    done = wait_state(execution)
    assert done.taskruns.get(task_id="after").outputs == {"value": "ship it"}
    change = StateChange.objects.get(
        execution=execution, taskrun=None, from_state="PAUSED"
    )
    assert (change.cause, change.reason) == ("cli", "release call") and change.actor


@pytest.mark.usefixtures("inprocess_engine")
def test_restart_and_replay_from_the_cli(deploy, capsys):
    failed = wait_state(create_execution(deploy(FLAKY), actor=Actor.system("test")))
    code, out, _ = cli(
        capsys, "executions", "replay", str(failed.pk), "--from-task", "nope"
    )
    assert code == 1
    code, out, err = cli(capsys, "executions", "restart", str(failed.pk))
    assert code == 0, err
    assert out.startswith(f"Execution {failed.pk} restarted (attempt 2)")
    assert wait_state(failed).state == State.SUCCESS
    code, out, err = cli(capsys, "executions", "restart", str(failed.pk))
    assert code == 1 and "only FAILED, KILLED or CANCELLED" in err

    original = wait_state(create_execution(deploy(STEPS), actor=Actor.system("test")))
    code, out, err = cli(
        capsys, "executions", "replay", str(original.pk), "-t", "loop", "--json"
    )
    assert code == 0, err
    replay = Execution.objects.get(pk=json.loads(out)["id"])
    assert replay.original_id == original.pk
    wait_state(replay)
    code, out, _ = cli(capsys, "executions", "get", str(original.pk))
    assert f"replays: #{replay.pk} tests.control.steps SUCCESS" in out
    code, out, err = cli(capsys, "executions", "resume", "999999")
    assert code == 1 and "execution 999999 does not exist" in err


def test_the_sweep_wakes_a_pause_whose_countdown_was_lost(deploy, transactional_db):
    """No dispatcher runs anything here: the countdown message goes nowhere,
    as with a broker restarted without persistence."""
    from executions.engine.executor import advance
    from executions.engine.liveness import sweep

    execution = create_execution(
        deploy(DELAYED), start=False, actor=Actor.system("test")
    )
    advance(execution.pk)
    nap = TaskRun.objects.get(execution=execution, task_id="nap")
    assert (nap.state, Execution.objects.get(pk=execution.pk).state) == (
        "PAUSED",
        "PAUSED",
    )
    assert sweep()["woken"] == 0  # not due yet
    TaskRun.objects.filter(pk=nap.pk).update(
        scheduled_at=timezone.now() - timedelta(seconds=5)
    )
    assert sweep()["woken"] == 1
    nap.refresh_from_db()
    assert nap.state == State.SUCCESS
    execution.refresh_from_db()
    assert execution.state == State.RUNNING
    assert (
        TaskRun.objects.get(execution=execution, task_id="after").state == State.CREATED
    )


def test_a_killing_parent_waiting_on_a_child_still_ends(deploy, transactional_db):
    """KILLING always ends: the grace sweep forces what no worker confirms."""
    from django.conf import settings

    from executions.engine.executor import advance
    from executions.engine.liveness import force_killing

    deploy(
        CHILD.replace(
            "  - id: check",
            "  - id: nap\n    type: Sleep\n    duration: PT30S\n  - id: check",
        )
    )
    parent = create_execution(
        deploy(PARENT), inputs={"n": 1}, start=False, actor=Actor.system("test")
    )
    advance(parent.pk)
    child = Execution.objects.get(parent=parent)
    advance(child.pk)
    nap = TaskRun.objects.get(execution=child, task_id="nap")
    # As if a live worker held it: the stop waits for that worker.
    worker = Worker.objects.create(
        name="w", hostname="h", pid=1, state=WorkerState.ALIVE
    )
    TaskRun.objects.filter(pk=nap.pk).update(state=State.RUNNING, worker=worker)
    kill(parent.pk, actor=Actor("user", "alice"))
    assert Execution.objects.get(pk=parent.pk).state == State.KILLED
    assert Execution.objects.get(pk=child.pk).state == State.KILLING
    assert force_killing() == 0  # within the grace period
    # The task keeps logging (fresh progress) but ignores the stop: the grace
    # counts from the kill, so KILLING still ends.
    past = timezone.now() - timedelta(seconds=settings.ORCHESTRA_KILL_GRACE_SECONDS + 1)
    StateChange.objects.filter(execution=child, to_state=State.KILLING).update(at=past)
    Execution.objects.filter(pk=child.pk).update(progress_at=timezone.now())
    assert force_killing() == 1
    assert Execution.objects.get(pk=child.pk).state == State.KILLED
    assert TaskRun.objects.get(pk=nap.pk).state == State.KILLED
