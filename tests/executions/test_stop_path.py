"""Every way an execution is stopped ends through lifecycle.stop, with the
same history rows: a person's kill settled by the executor, a kill whose
grace expired, a stuck cleanup's cancel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from executions import dispatch
from executions.engine.executor import advance
from executions.engine.liveness import force_killing
from executions.lifecycle import stop
from executions.lifecycle.actor import Actor
from executions.models import Cause, Execution, State, StateChange, TaskRun
from executions.stuck import cleanup
from tests.executions.stuck_helpers import make_execution, make_taskrun, make_worker

pytestmark = pytest.mark.django_db

ALICE = Actor(Cause.USER, "alice")


class Quiet:
    """A dispatcher that sends nothing (no broker in these tests)."""

    def revoke(self, ids):
        pass

    def run_taskrun(self, pk, eta=None):
        pass

    def advance(self, pk, countdown=None):
        pass


@pytest.fixture(autouse=True)
def quiet():
    before = dispatch.get()
    dispatch.use(Quiet())
    yield
    dispatch.use(before)


@pytest.fixture
def calls(monkeypatch):
    """Which of stop's functions each path went through."""
    seen: list[str] = []
    for name in ("stop_many", "settle"):
        real = getattr(stop, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            seen.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(stop, name, spy)
    return seen


def history(execution: Execution) -> list[tuple]:
    """(task, from, to, cause) of every history row, in order."""
    return list(
        StateChange.objects.filter(execution=execution)
        .order_by("id")
        .values_list("taskrun__task_id", "from_state", "to_state", "cause")
    )


def running_on_a_live_worker(**kwargs) -> tuple[Execution, TaskRun]:
    execution = make_execution(**kwargs)
    return execution, make_taskrun(execution, worker=make_worker())


def grace_has_passed(execution: Execution) -> None:
    """Move the stop (and the last progress) back past the kill grace."""
    from django.conf import settings

    past = timezone.now() - timedelta(seconds=settings.ORCHESTRA_KILL_GRACE_SECONDS + 1)
    Execution.objects.filter(pk=execution.pk).update(progress_at=past)
    StateChange.objects.filter(execution=execution, to_state=State.KILLING).update(
        at=past
    )


def test_a_kill_waits_for_the_worker_then_the_executor_settles_it(calls):
    execution, tr = running_on_a_live_worker()
    stop.kill(execution.pk, actor=ALICE, reason="wrong input")
    execution.refresh_from_db()
    assert (execution.state, execution.stop_state) == (State.KILLING, State.KILLED)
    # The worker sees KILLING, stops its task, and advances the execution.
    TaskRun.objects.filter(pk=tr.pk).update(state=State.KILLED)
    advance(execution.pk)
    execution.refresh_from_db()
    assert execution.state == State.KILLED
    assert calls == ["stop_many", "settle"]
    assert history(execution)[-2:] == [
        (None, State.RUNNING, State.KILLING, Cause.USER),
        (None, State.KILLING, State.KILLED, Cause.EXECUTOR),
    ]


def test_a_kill_nobody_confirms_is_forced_after_the_grace(calls):
    execution, tr = running_on_a_live_worker()
    stop.kill(execution.pk, actor=ALICE)
    assert force_killing() == 0  # within the grace
    grace_has_passed(execution)
    assert force_killing() == 1
    execution.refresh_from_db()
    assert execution.state == State.KILLED
    assert calls == ["stop_many", "settle"]
    assert history(execution)[-3:] == [
        (None, State.RUNNING, State.KILLING, Cause.USER),
        ("work", State.RUNNING, State.KILLED, Cause.SWEEP),
        (None, State.KILLING, State.KILLED, Cause.SWEEP),
    ]


def test_a_cleanup_cancel_of_a_silent_worker_ends_like_a_kill_but_cancelled(calls):
    execution = make_execution(age=60)
    tr = make_taskrun(execution, worker=make_worker(silent_for=60))
    result = cleanup.run_cleanup(older_than_minutes=5, actor=ALICE)
    assert result["execution_ids"] == [execution.pk]
    execution.refresh_from_db()
    assert (execution.state, execution.stop_state) == (State.KILLING, State.CANCELLED)
    grace_has_passed(execution)
    assert force_killing() == 1
    execution.refresh_from_db()
    assert execution.state == State.CANCELLED
    assert TaskRun.objects.get(pk=tr.pk).state == State.CANCELLED
    assert calls == ["stop_many", "settle"]
    assert history(execution)[-3:] == [
        (None, State.RUNNING, State.KILLING, Cause.USER),
        ("work", State.RUNNING, State.CANCELLED, Cause.SWEEP),
        (None, State.KILLING, State.CANCELLED, Cause.SWEEP),
    ]


def test_work_on_a_dead_worker_ends_at_once_whichever_path_stops_it(calls):
    killed = make_execution()
    k_tr = make_taskrun(killed, worker=make_worker(alive=False))
    stop.kill(killed.pk, actor=ALICE)
    cancelled = make_execution(age=60)
    c_tr = make_taskrun(cancelled, worker=make_worker(alive=False))
    cleanup.run_cleanup(older_than_minutes=5, actor=ALICE)
    for execution, tr, final in (
        (killed, k_tr, State.KILLED),
        (cancelled, c_tr, State.CANCELLED),
    ):
        execution.refresh_from_db()
        assert execution.state == final
        assert TaskRun.objects.get(pk=tr.pk).state == final
        assert history(execution)[-2:] == [
            ("work", State.RUNNING, final, Cause.USER),
            (None, State.RUNNING, final, Cause.USER),
        ]
    assert calls == ["stop_many", "stop_many"]


def test_children_stop_with_their_parent_on_every_path(calls):
    parent, _ = running_on_a_live_worker()
    child = make_execution(parent=parent)
    waiting = make_taskrun(child, state=State.CREATED)
    stop.kill(parent.pk, actor=ALICE)
    child.refresh_from_db()
    assert child.state == State.KILLED
    assert TaskRun.objects.get(pk=waiting.pk).state == State.KILLED
    row = StateChange.objects.get(execution=child, taskrun=None, to_state=State.KILLED)
    assert (row.cause, row.actor, row.reason) == (
        Cause.USER,
        "alice",
        f"parent execution {parent.pk} stopped",
    )
    assert calls == ["stop_many"]
