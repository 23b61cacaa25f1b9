"""Stuck or spared, and why: the one detection function every interface uses."""

from __future__ import annotations

import pytest

from executions.models import State
from executions.stuck.detect import detect, stuck_among, stuck_count
from tests.executions.stuck_helpers import make_execution, make_taskrun, make_worker

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_cached_counts():
    from django.core.cache import cache

    cache.clear()


def verdict(execution, **kwargs):
    found = detect(**{"older_than_minutes": 5, **kwargs})
    return found.by_id.get(execution.pk)


def test_a_task_on_a_dead_worker_is_orphaned_and_names_the_worker():
    ex = make_execution(progress=1)
    worker = make_worker(alive=False)
    make_taskrun(ex, worker=worker)
    v = verdict(ex)
    assert v.stuck and v.kind == "orphaned"
    assert v.worker == worker.name and worker.name in v.reason
    assert "declared dead" in v.reason


def test_a_worker_silent_past_the_liveness_timeout_orphans_its_task_even_before_the_sweep():
    ex = make_execution(progress=1)
    worker = make_worker(silent_for=60)  # timeout in tests: 0.5 s x 3
    make_taskrun(ex, worker=worker)
    v = verdict(ex)
    assert (v.stuck, v.kind, v.worker) == (True, "orphaned", worker.name)
    assert "last heartbeat" in v.reason


@pytest.mark.parametrize("threshold", [1, 5, 60 * 24 * 30])
def test_a_long_task_on_a_live_worker_is_never_stuck_whatever_the_threshold(threshold):
    # Ten days old and no log line for ten days: its worker still heartbeats.
    ex = make_execution(age=60 * 24 * 10, progress=60 * 24 * 10)
    worker = make_worker()
    make_taskrun(ex, worker=worker, task_id="long")
    found = detect(older_than_minutes=threshold)
    assert found.stuck == []
    if threshold < 60 * 24 * 10:
        v = found.by_id[ex.pk]
        assert (v.stuck, v.kind, v.worker) == (False, "running", worker.name)
        assert "task 'long' running on live worker" in v.reason


def test_paused_scheduled_and_queued_executions_are_spared_with_their_reason():
    paused = make_execution(State.PAUSED, progress=600)
    retrying = make_execution(progress=600)
    make_taskrun(
        retrying,
        State.CREATED,
        task_id="fetch",
        attempt=3,
        scheduled_in=30,
        created_age=600,
    )
    holder = make_execution(flow="limited", progress=1)
    make_taskrun(holder, worker=make_worker())
    queued = make_execution(State.QUEUED, flow="limited", progress=600)
    found = detect(older_than_minutes=5)
    kinds = {v.id: (v.stuck, v.kind) for v in found.spared}
    assert kinds[paused.pk] == (False, "paused")
    assert kinds[retrying.pk] == (False, "scheduled")
    assert "attempt 3 of 'fetch' scheduled for" in found.by_id[retrying.pk].reason
    assert kinds[queued.pk] == (False, "queued")
    assert "concurrency limit" in found.by_id[queued.pk].reason
    assert found.stuck == []


def test_queued_with_nothing_holding_a_slot_is_lost():
    queued = make_execution(State.QUEUED, flow="limited", progress=600)
    v = verdict(queued)
    assert (v.stuck, v.kind) == (True, "lost")


def test_a_parent_waiting_on_a_live_child_is_spared_and_on_a_stuck_child_is_stuck():
    parent = make_execution(progress=600)
    child = make_execution(parent=parent, age=1, progress=0)
    make_taskrun(child, worker=make_worker())
    v = verdict(parent)
    assert (v.stuck, v.kind) == (False, "waiting-child")
    assert f"child execution #{child.pk}" in v.reason

    other = make_execution(progress=600)
    dead_child = make_execution(parent=other, age=1, progress=0)
    make_taskrun(dead_child, worker=make_worker(alive=False))
    v = verdict(other)
    assert (v.stuck, v.kind) == (True, "orphaned")
    assert f"#{dead_child.pk}, which is stuck" in v.reason


def test_never_picked_up_is_lost_and_no_progress_is_stalled():
    created = make_execution(State.CREATED, progress=30)
    waiting = make_execution(progress=30)
    make_taskrun(waiting, State.CREATED, task_id="load", created_age=30)
    idle = make_execution(progress=30)
    busy = make_execution(progress=1)
    found = detect(older_than_minutes=5)
    assert (found.by_id[created.pk].kind, found.by_id[created.pk].stuck) == (
        "lost",
        True,
    )
    assert found.by_id[waiting.pk].kind == "lost"
    assert "task 'load' waiting for a worker" in found.by_id[waiting.pk].reason
    assert (found.by_id[idle.pk].kind, found.by_id[idle.pk].stuck) == ("stalled", True)
    assert (found.by_id[busy.pk].kind, found.by_id[busy.pk].stuck) == ("recent", False)


def test_filters_namespace_with_children_flow_and_minimum_age():
    inside = make_execution(ns="team")
    child_ns = make_execution(ns="team.etl", flow="other")
    lookalike = make_execution(ns="teams")
    young = make_execution(ns="team", age=2, progress=2)
    assert {v.id for v in detect(older_than_minutes=5, namespace="team").stuck} == {
        inside.pk,
        child_ns.pk,
    }
    assert {v.id for v in detect(older_than_minutes=5, flow="other").stuck} == {
        child_ns.pk
    }
    assert young.pk not in detect(older_than_minutes=5).by_id
    assert young.pk in detect(older_than_minutes=1).by_id
    assert lookalike.pk in detect(older_than_minutes=5).by_id
    done = make_execution(State.SUCCESS)
    assert done.pk not in detect(older_than_minutes=1).by_id


def test_detection_runs_a_fixed_number_of_queries_whatever_the_number_of_executions(
    django_assert_max_num_queries,
):
    worker, dead = make_worker(), make_worker(alive=False)
    for i in range(40):
        ex = make_execution(
            State.QUEUED if i % 5 == 0 else State.RUNNING, flow=f"f{i % 3}"
        )
        make_taskrun(ex, worker=worker if i % 2 else dead)
        make_taskrun(ex, State.CREATED, task_id="next", scheduled_in=5)
        make_execution(parent=ex, age=1)
    with django_assert_max_num_queries(6):
        found = detect(older_than_minutes=5)
    assert len(found.stuck) + len(found.spared) == 40


def test_stuck_count_matches_the_preview_for_the_user():
    from django.contrib.auth import get_user_model

    from accounts.models import Role

    make_execution(ns="team.a")
    make_execution(ns="team.b")
    make_execution(ns="other")
    alice = get_user_model().objects.create_user("alice")
    Role.objects.create(user=alice, role="viewer", namespace="team")
    assert stuck_count(alice) == 2
    assert stuck_count() == 3


def test_stuck_among_keeps_the_queryset_scope():
    from executions.models import Execution

    a = make_execution(ns="team.a")
    make_execution(ns="team.b")
    healthy = make_execution(ns="team.a")
    make_taskrun(healthy, worker=make_worker())
    assert list(stuck_among(Execution.objects.in_namespace("team.a"))) == [a]
    assert stuck_among(Execution.objects.all(), older_than_minutes=60).count() == 0
