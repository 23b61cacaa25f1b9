"""Flow concurrency: limit, QUEUE / CANCEL / FAIL, slots freed at once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from executions.lifecycle.actor import Actor
from executions.lifecycle.admission import release_all
from executions.lifecycle.base import ActionError
from executions.lifecycle.replay import replay
from executions.lifecycle.restart import restart
from executions.lifecycle.start import create_execution
from executions.lifecycle.stop import kill, stop
from executions.models import Cause, Execution, State, StateChange
from flows.models import save_flow
from tests.conftest import wait_for

FLOW = """
id: limited
namespace: tests.conc
concurrency:
  limit: {limit}
  behavior: {behavior}
tasks:
  - id: nap
    type: Sleep
    duration: {duration}
"""


def deploy(limit: int = 1, behavior: str = "QUEUE", duration: str = "PT30S"):
    _, revision, _ = save_flow(
        FLOW.format(limit=limit, behavior=behavior, duration=duration), actor="test"
    )
    return revision


def states(*executions) -> list[str]:
    return [Execution.objects.get(pk=e.pk).state for e in executions]


def test_over_the_limit_executions_queue_and_start_in_creation_order(db):
    rev = deploy(limit=2)
    a, b, c, d = (create_execution(rev, actor=Actor.system("test")) for _ in range(4))
    assert states(a, b, c, d) == ["CREATED", "CREATED", "QUEUED", "QUEUED"]
    change = StateChange.objects.get(execution=c, to_state="QUEUED")
    assert (
        change.reason == "flow concurrency limit 2 reached (2 running); behavior QUEUE"
    )
    assert change.details == {"limit": 2, "running": 2, "behavior": "QUEUE"}
    # A kill frees its slot in the same transaction: the oldest queued one starts.
    kill(a.pk, actor=Actor(Cause.USER, "alice"))
    assert states(a, b, c, d) == ["KILLED", "CREATED", "CREATED", "QUEUED"]
    assert StateChange.objects.get(execution=c, from_state="QUEUED").reason == (
        "a concurrency slot was freed"
    )
    # Cancelling (e.g. stuck cleanup) frees it too.
    stop(b.pk, final=State.CANCELLED, reason="cleanup", actor=Actor(Cause.SWEEP, ""))
    assert states(c, d) == ["CREATED", "CREATED"]


def test_killing_a_queued_execution_gives_nobody_its_slot(db):
    rev = deploy(limit=1)
    a, b, c = (create_execution(rev, actor=Actor.system("test")) for _ in range(3))
    kill(b.pk, actor=Actor(Cause.USER, ""))
    assert states(a, b, c) == ["CREATED", "KILLED", "QUEUED"]


@pytest.mark.parametrize(
    ("behavior", "state"), [("CANCEL", "CANCELLED"), ("FAIL", "FAILED")]
)
def test_cancel_and_fail_behaviors_end_the_new_execution_at_once(db, behavior, state):
    rev = deploy(limit=1, behavior=behavior)
    a, b = (
        create_execution(rev, actor=Actor.system("test")),
        create_execution(rev, actor=Actor.system("test")),
    )
    assert states(a, b) == ["CREATED", state]
    change = StateChange.objects.get(execution=b, to_state=state)
    assert (change.cause, change.actor) == ("system", "concurrency")
    assert f"behavior {behavior}" in change.reason
    b.refresh_from_db()
    assert b.taskruns.count() == 0
    if state == "FAILED":
        assert b.error.startswith("flow concurrency limit 1 reached")


def test_raising_the_limit_lets_the_sweep_start_queued_ones(db):
    rev = deploy(limit=1)
    a, b, c = (create_execution(rev, actor=Actor.system("test")) for _ in range(3))
    deploy(limit=3)
    assert release_all() == 2
    assert states(a, b, c) == ["CREATED", "CREATED", "CREATED"]


def test_two_processes_creating_at_once_never_exceed_the_limit(
    postgres, transactional_db
):
    rev = deploy(limit=3)
    barrier = threading.Barrier(8)
    created = []

    def create():
        try:
            barrier.wait()
            created.append(create_execution(rev, actor=Actor.system("test")).pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = dict(Execution.objects.filter(pk__in=created).values_list("pk", "state"))
    assert sorted(rows.values()).count("QUEUED") == 5


def test_real_workers_keep_the_limit_and_drain_the_queue_in_order(
    postgres, start_worker
):
    rev = deploy(limit=2, duration="PT0.5S")
    start_worker("w1", concurrency=2)
    start_worker("w2", concurrency=2)
    executions = [create_execution(rev, actor=Actor.system("test")) for _ in range(6)]
    wait_for(
        lambda: all(s == "SUCCESS" for s in states(*executions)),
        60,
        what="all six executions to succeed",
    )
    rows = sorted(
        Execution.objects.filter(pk__in=[e.pk for e in executions]), key=lambda e: e.pk
    )
    # Never more than two running at once...
    for row in rows:
        overlapping = [o for o in rows if o.started_at <= row.started_at < o.ended_at]
        assert len(overlapping) <= 2
    # ...and the queued ones were let in in the order they were created. (Two
    # let in together start on two workers, so their start times may swap;
    # the admission rows are written in order.)
    admitted = [
        StateChange.objects.get(
            execution=r, taskrun=None, from_state="QUEUED", to_state="CREATED"
        ).pk
        for r in rows[2:]
    ]
    assert admitted == sorted(admitted)
    assert all(
        StateChange.objects.filter(execution=r, to_state="QUEUED").exists()
        for r in rows[2:]
    )


def test_kill_on_a_real_worker_frees_the_slot_at_once(postgres, start_worker):
    rev = deploy(limit=1, duration="PT30S")
    start_worker("w1")
    first = create_execution(rev, actor=Actor.system("test"))
    wait_for(lambda: states(first) == ["RUNNING"], 20, what="first to run")
    second = create_execution(rev, actor=Actor.system("test"))
    assert states(second) == ["QUEUED"]
    kill(first.pk, actor=Actor(Cause.USER, "alice"))
    # The first one may still be KILLING while its task stops: its slot is free.
    assert states(second) != ["QUEUED"]
    wait_for(lambda: states(second) == ["RUNNING"], 20, what="second to run")
    wait_for(lambda: states(first) == ["KILLED"], 20, what="first to be killed")
    kill(second.pk, actor=Actor(Cause.USER, ""))  # (so the worker stops quickly)
    wait_for(lambda: states(second) == ["KILLED"], 20, what="second to be killed")


GATED = """
id: gated
namespace: tests.conc
inputs:
  - id: nap
    type: STRING
    defaults: PT0.2S
concurrency:
  limit: 1
  behavior: {behavior}
tasks:
  - id: nap
    type: Sleep
    duration: "{{{{ inputs.nap }}}}"
"""


def running(execution) -> bool:
    """Its task is claimed by a worker. (Killing in the instant between the
    executor starting an execution and a worker claiming its task can
    deadlock the kill with the claim: see the report of this change.)"""
    return execution.taskruns.filter(state="RUNNING").exists()


def test_replay_and_restart_wait_for_a_slot_like_new_executions(postgres, start_worker):
    _, rev, _ = save_flow(GATED.format(behavior="QUEUE"), actor="test")
    start_worker("w1", concurrency=2)
    done = create_execution(rev, actor=Actor.system("test"))
    wait_for(lambda: states(done) == ["SUCCESS"], 30, what="first run to succeed")
    long = create_execution(rev, inputs={"nap": "PT30S"}, actor=Actor.system("test"))
    wait_for(lambda: running(long), 20, what="long run to start")

    replayed = replay(done.pk, actor=Actor(Cause.USER, "alice"))
    assert states(replayed) == ["QUEUED"]
    queued = StateChange.objects.get(execution=replayed, to_state="QUEUED")
    assert queued.reason == (
        "flow concurrency limit 1 reached (1 running); behavior QUEUE"
    )
    # The slot frees when the long run is killed: the replay runs to the end.
    kill(long.pk, actor=Actor(Cause.USER, "alice"))
    wait_for(lambda: states(replayed) == ["SUCCESS"], 30, what="the replay to run")
    wait_for(lambda: states(long) == ["KILLED"], 20, what="the long run to end")

    blocker = create_execution(rev, inputs={"nap": "PT30S"}, actor=Actor.system("test"))
    wait_for(lambda: running(blocker), 20, what="blocker to start")
    restart(long.pk, actor=Actor(Cause.USER, "alice"))
    assert states(long) == ["QUEUED"]
    steps = list(
        StateChange.objects.filter(execution=long, taskrun=None)
        .order_by("id")
        .values_list("from_state", "to_state", "actor")
    )
    assert steps[-2:] == [
        ("KILLED", "RESTARTED", "alice"),
        ("RESTARTED", "QUEUED", "concurrency"),
    ]
    assert Execution.objects.get(pk=long.pk).attempt == 2
    kill(blocker.pk, actor=Actor(Cause.USER, "alice"))
    wait_for(lambda: running(long), 20, what="the restart to run")
    assert (
        Execution.objects.filter(
            pk__in=[long.pk, blocker.pk, replayed.pk], state="RUNNING"
        ).count()
        == 1
    )
    kill(long.pk, actor=Actor(Cause.USER, ""))
    wait_for(lambda: states(long, blocker) == ["KILLED", "KILLED"], 20, what="end")


@pytest.mark.parametrize(
    ("behavior", "state"), [("CANCEL", "CANCELLED"), ("FAIL", "FAILED")]
)
def test_at_the_limit_a_replay_ends_per_behavior_and_a_restart_is_refused(
    db, behavior, state
):
    _, rev, _ = save_flow(GATED.format(behavior=behavior), actor="test")
    ended = create_execution(rev, actor=Actor.system("test"))
    kill(ended.pk, actor=Actor(Cause.USER, "alice"))
    holder = create_execution(rev, actor=Actor.system("test"))
    assert states(ended, holder) == ["KILLED", "CREATED"]
    replayed = replay(ended.pk, actor=Actor(Cause.USER, "alice"))
    assert states(replayed) == [state]
    assert replayed.taskruns.count() == 0
    history = StateChange.objects.filter(execution=ended).count()
    with pytest.raises(ActionError) as refused:
        restart(ended.pk, actor=Actor(Cause.USER, "alice"))
    assert str(refused.value) == (
        f"execution {ended.pk} cannot restart now: flow concurrency limit 1 reached "
        f"(1 running); behavior {behavior}; restart it when a slot is free"
    )
    assert states(ended) == ["KILLED"]
    assert StateChange.objects.filter(execution=ended).count() == history
