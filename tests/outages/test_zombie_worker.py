"""A paused worker declared dead stops its work when it wakes (real processes,
SIGSTOP and SIGCONT by pid)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from django.conf import settings

from executions.engine.liveness import sweep
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import State, StateChange, TaskRun, Worker
from tests.conftest import wait_for

FLOW = """
id: effect
namespace: tests.zombie
tasks:
  - id: act
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      # Steps of one second: a sleep that a long freeze outlasts ends at
      # once on wake, and the effect must come well after the wake.
      - for step in 1 2 3 4 5 6 7 8; do sleep 1; done
      - echo "{{{{ taskrun.id }}}}" >> {effects}
"""


def _descendants(pid: int) -> set[int]:
    """``pid`` and every process below it (the script runs in its own session)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def test_a_worker_woken_after_it_was_declared_dead_runs_no_side_effect(
    deploy, start_worker, tmp_path
):
    effects = tmp_path / "effects.txt"
    # Not a test of the sandbox: the script writes to this test's folder.
    plain = {"ORCHESTRA_SCRIPT_SANDBOX": "none"}
    w1 = start_worker("w1", concurrency=1, env=plain)
    execution = create_execution(
        deploy(FLOW.format(effects=effects)), actor=Actor.system("test")
    )
    tr = wait_for(
        lambda: TaskRun.objects.filter(
            execution=execution, state=State.RUNNING, worker=w1.worker
        ).first(),
        30,
        what="the script to start on w1",
    )
    wait_for(lambda: len(_descendants(w1.proc.pid)) > 2, 10, what="the script")
    frozen = _descendants(w1.proc.pid)
    for pid in frozen:  # a frozen machine: the worker and its script
        os.kill(pid, signal.SIGSTOP)
    w2 = start_worker("w2", concurrency=1, env=plain)

    def resubmitted():
        sweep()
        return TaskRun.objects.filter(pk=tr.pk, resubmits=1).exists()

    wait_for(
        resubmitted, 30, interval=0.2, what="w1 declared dead, its run resubmitted"
    )
    assert Worker.objects.get(pk=w1.worker.pk).state == "dead"
    wait_for(
        lambda: TaskRun.objects.filter(pk=tr.pk, worker=w2.worker).exists(),
        30,
        what="w2 to take the resubmitted run",
    )
    for pid in frozen:
        os.kill(pid, signal.SIGCONT)
    wait_for(
        lambda: execution.__class__.objects.get(pk=execution.pk).is_terminal,
        60,
        what="the execution to end on w2",
    )
    execution.refresh_from_db()
    assert execution.state == State.SUCCESS
    # w1 woke with seconds of its script left: its lease check stopped it.
    wait_for(
        lambda: (
            "declared dead while it ran the task" in w1.read_log()
            or "was declared dead" in w1.read_log()
        ),
        20,
        what="w1 to notice it was declared dead",
    )
    wait_for(lambda: not (_descendants(w1.proc.pid) - {w1.proc.pid}), 20)
    assert effects.read_text().split() == [str(tr.pk)], "the side effect ran once"
    finishes = StateChange.objects.filter(taskrun=tr, to_state=State.SUCCESS)
    assert [c.from_state for c in finishes] == ["RUNNING"]
    assert settings.ORCHESTRA_WORKER_LOST_RESUBMITS >= 1
