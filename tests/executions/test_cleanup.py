"""Preview, confirm, cap, audit, roles, automatic cleanup; CLI and REST shapes."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import ApiToken, Role
from executions.engine.liveness import force_killing
from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.models import (
    AutoCleanup,
    Cause,
    CleanupRun,
    Execution,
    State,
    StateChange,
    TaskRun,
)
from executions.stuck import cleanup
from orchestra.cli import main as orchestra
from tests.executions.stuck_helpers import make_execution, make_taskrun, make_worker

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_cached_counts():
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password="pw-alice-123")


def audit(execution):
    return StateChange.objects.get(
        execution=execution, taskrun=None, to_state=State.CANCELLED
    )


def test_confirm_cancels_the_previewed_ids_stops_their_work_and_audits_each(recorder):
    orphan = make_execution()
    tr_dead = make_taskrun(orphan, worker=make_worker(alive=False))
    lost = make_execution(State.RUNNING)
    tr_wait = make_taskrun(lost, State.CREATED, created_age=30)
    # A parent whose child lost its worker: both go, the child in the same bulk.
    parent = make_execution()
    child = make_execution(parent=parent, age=1, progress=0)
    tr_child = make_taskrun(child, worker=make_worker(alive=False))
    grandchild = make_execution(parent=child, age=1, progress=10)
    run, found = cleanup.preview(older_than_minutes=5, actor=Actor(Cause.USER, "alice"))
    assert run.preview_ids == [orphan.pk, lost.pk, parent.pk]
    assert found.by_id[parent.pk].reason.startswith(
        f"waiting on child execution #{child.pk}"
    )
    run = cleanup.confirm(run, actor=Actor("user", "alice"))
    assert run.cancelled_ids == [orphan.pk, lost.pk, parent.pk] and run.skipped == []
    for ex in (orphan, lost, parent, child, grandchild):
        ex.refresh_from_db()
        assert ex.state == State.CANCELLED
    for tr in (tr_dead, tr_wait, tr_child):
        assert TaskRun.objects.get(pk=tr.pk).state == State.CANCELLED
    assert set(recorder.revoked) == {
        f"orchestra-taskrun-{tr.pk}" for tr in (tr_dead, tr_wait, tr_child)
    }
    row = audit(orphan)
    assert (row.cause, row.actor) == ("user", "alice")
    assert row.reason.startswith("stuck (orphaned): task 'work' was running on worker")
    assert row.details["cleanup_run"] == run.pk and row.details["kind"] == "orphaned"
    for ex in (child, grandchild):
        assert audit(ex).reason.startswith("parent execution ")
        assert audit(ex).details["cleanup_run"] == run.pk
        assert audit(ex).actor == "alice"


def test_an_execution_that_moves_after_the_preview_is_skipped_on_confirm(recorder):
    resumed = make_execution()
    progressed = make_execution()
    finished = make_execution()
    picked_up = make_execution()
    make_taskrun(picked_up, State.CREATED, created_age=30)
    untouched = make_execution()
    run, _ = cleanup.preview(older_than_minutes=5, actor=Actor.system("test"))
    assert len(run.preview) == 5
    Execution.objects.filter(pk=resumed.pk).update(state=State.PAUSED)
    Execution.objects.filter(pk=progressed.pk).update(progress_at=timezone.now())
    Execution.objects.filter(pk=finished.pk).update(state=State.SUCCESS)
    # A worker picked the waiting task up: the row progress is the same, the
    # verdict is not (its worker is alive).
    TaskRun.objects.filter(execution=picked_up).update(
        state=State.RUNNING, worker=make_worker()
    )
    run = cleanup.confirm(run, actor=Actor.system("test"))
    assert run.cancelled_ids == [untouched.pk]
    reasons = {row["id"]: row["reason"] for row in run.skipped}
    assert reasons[resumed.pk] == "moved from RUNNING to PAUSED since the preview"
    assert reasons[progressed.pk] == "made progress since the preview"
    assert reasons[finished.pk] == "ended SUCCESS since the preview"
    assert reasons[picked_up.pk].startswith(
        "no longer stuck: task 'work' running on live"
    )
    assert Execution.objects.get(pk=picked_up.pk).state == State.RUNNING
    assert not StateChange.objects.filter(
        execution=resumed, to_state=State.CANCELLED
    ).exists()


def test_the_cap_holds_oldest_first_and_a_preview_is_confirmed_once(recorder):
    stuck = [make_execution() for _ in range(5)]
    run, _ = cleanup.preview(
        older_than_minutes=5, max_count=2, actor=Actor.system("test")
    )
    assert run.preview_ids == [stuck[0].pk, stuck[1].pk] and run.beyond_cap == 3
    run = cleanup.confirm(run, actor=Actor.system("test"))
    assert Execution.objects.filter(state=State.CANCELLED).count() == 2
    with pytest.raises(cleanup.CleanupError, match="already confirmed"):
        cleanup.confirm(CleanupRun.objects.get(pk=run.pk), actor=Actor.system("test"))
    assert Execution.objects.filter(state=State.CANCELLED).count() == 2


def test_a_dry_run_cancels_nothing(recorder):
    ex = make_execution()
    result = cleanup.run_cleanup(
        older_than_minutes=5, dry_run=True, actor=Actor.system("test")
    )
    assert result["execution_ids"] == [ex.pk]
    assert result["message"] == "Would cancel 1 stuck execution older than 5 minutes"
    assert Execution.objects.get(pk=ex.pk).state == State.RUNNING
    with pytest.raises(cleanup.CleanupError, match="dry run"):
        cleanup.confirm(
            CleanupRun.objects.get(pk=result["cleanup_id"]), actor=Actor.system("test")
        )


def test_a_silent_worker_gets_the_stop_and_the_execution_ends_cancelled_after_the_grace(
    recorder, settings
):
    settings.ORCHESTRA_KILL_GRACE_SECONDS = 0.1
    ex = make_execution()
    tr = make_taskrun(ex, worker=make_worker(silent_for=60))
    result = cleanup.run_cleanup(older_than_minutes=5, actor=Actor(Cause.USER, "alice"))
    assert result["execution_ids"] == [ex.pk]
    ex.refresh_from_db()
    # Its worker may still be running the task: it sees KILLING and stops.
    assert (ex.state, ex.stop_state) == (State.KILLING, State.CANCELLED)
    assert TaskRun.objects.get(pk=tr.pk).state == State.RUNNING
    # The grace counts from the stop: move the stop (and the last progress) a second back.
    a_second_ago = timezone.now() - timezone.timedelta(seconds=1)
    Execution.objects.filter(pk=ex.pk).update(progress_at=a_second_ago)
    StateChange.objects.filter(execution=ex, to_state=State.KILLING).update(
        at=a_second_ago
    )
    assert force_killing() == 1
    ex.refresh_from_db()
    assert ex.state == State.CANCELLED
    # A cancel cancels its task runs, however the stop ends.
    assert TaskRun.objects.get(pk=tr.pk).state == State.CANCELLED
    killing = StateChange.objects.get(execution=ex, to_state=State.KILLING)
    assert killing.actor == "alice"
    assert killing.details["waiting_for_worker"] is True
    assert killing.details["forced_after_seconds"] == 0.1


def test_users_cancel_only_where_they_are_operator(alice, recorder):
    mine = make_execution(ns="team.a")
    theirs = make_execution(ns="team.b")
    hidden = make_execution(ns="other")
    Role.objects.create(user=alice, role="operator", namespace="team.a")
    Role.objects.create(user=alice, role="viewer", namespace="team.b")
    result = cleanup.run_cleanup(
        older_than_minutes=5, actor=Actor(Cause.USER, "alice", alice)
    )
    assert result["execution_ids"] == [mine.pk]
    assert [row["id"] for row in result["not_permitted"]] == [theirs.pk]
    assert hidden.pk not in {
        row["id"] for row in result["spared"] + result["not_permitted"]
    }
    assert Execution.objects.get(pk=theirs.pk).state == State.RUNNING
    assert Execution.objects.get(pk=hidden.pk).state == State.RUNNING


def test_automatic_cleanup_is_off_by_default_then_follows_its_threshold_and_daily_cap(
    recorder,
):
    old = [make_execution(ns="team.a", age=120) for _ in range(3)]
    recent = make_execution(ns="team.a", age=30)
    specific = make_execution(ns="team.a.b", age=120)
    assert cleanup.auto_cleanup() == {}
    AutoCleanup.objects.create(
        namespace="team", enabled=True, older_than_minutes=60, daily_cap=2
    )
    AutoCleanup.objects.create(
        namespace="team.a.b", enabled=False, older_than_minutes=600
    )
    assert cleanup.auto_cleanup() == {"team": 2}
    assert set(
        Execution.objects.filter(state=State.CANCELLED).values_list("pk", flat=True)
    ) == {old[0].pk, old[1].pk}
    assert cleanup.auto_cleanup() == {"team": 0}  # cap reached for today
    row = audit(old[0])
    assert (row.cause, row.actor) == ("sweep", "auto-cleanup:team")
    AutoCleanup.objects.filter(namespace="team").update(daily_cap=10)
    # The more specific prefix, once enabled, owns team.a.b (600 min: spared).
    AutoCleanup.objects.filter(namespace="team.a.b").update(enabled=True)
    assert cleanup.auto_cleanup() == {"team": 1, "team.a.b": 0}
    assert Execution.objects.get(pk=old[2].pk).state == State.CANCELLED
    assert Execution.objects.get(pk=recent.pk).state == State.RUNNING
    assert Execution.objects.get(pk=specific.pk).state == State.RUNNING


# --- CLI --------------------------------------------------------------------
def test_cli_json_matches_the_seed_shape(capsys, recorder):
    a, b = make_execution(), make_execution()
    healthy = make_execution()
    make_taskrun(healthy, worker=make_worker())
    assert orchestra(["cleanup", "--dry-run", "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)  # the JSON object alone on stdout
    assert data["execution_ids"] == [a.pk, b.pk]
    assert all(type(i) is int for i in data["execution_ids"])
    assert data["cancelled_count"] == 2
    assert data["message"] == "Would cancel 2 stuck executions older than 5 minutes"
    assert data["reasons"][str(a.pk)].startswith("stalled: no progress since")
    assert [s["id"] for s in data["spared"]] == [healthy.pk]
    assert Execution.objects.get(pk=a.pk).state == State.RUNNING

    assert (
        orchestra(["cleanup", "--json", "--older-than-minutes", "10", "--max", "1"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert (data["cancelled_count"], data["execution_ids"]) == (1, [a.pk])
    assert data["message"].startswith(
        "Cancelled 1 stuck execution older than 10 minutes"
    )
    assert audit(a).cause == "cli"


def test_cli_human_output_and_bad_threshold(capsys, recorder):
    ex = make_execution(ns="team.a", flow="etl")
    assert orchestra(["cleanup", "--dry-run", "--namespace", "team"]) == 0
    out = capsys.readouterr().out
    assert "[DRY RUN] Cleanup Stuck Executions" in out
    assert "Older than: 5 minutes" in out and "Found: 1 stuck execution(s)" in out
    assert "[DRY RUN] Would cancel 1 stuck execution older than 5 minutes" in out
    assert f"  - {ex.pk}  team.a.etl  stalled: no progress since" in out
    assert "Note: Run without --dry-run to actually cancel these executions" in out
    for bad in ("0", "-3", "five", "100000000000"):
        with pytest.raises(SystemExit) as exit_info:
            orchestra(["cleanup", "--older-than-minutes", bad])
        assert exit_info.value.code == 2
        assert "--older-than-minutes" in capsys.readouterr().err
    assert Execution.objects.get(pk=ex.pk).state == State.RUNNING


# --- REST -------------------------------------------------------------------
def _post(client, key, body, content_type="application/json"):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(
        "/api/executions/cleanup",
        data,
        content_type=content_type,
        headers={"Authorization": f"Bearer {key}"},
    )


def test_rest_takes_the_seed_body_and_answers_the_seed_shape(client, alice, recorder):
    Role.objects.create(user=alice, role="operator", namespace="")
    _, key = ApiToken.issue(alice, "ci")
    ex = make_execution()
    response = _post(client, key, {"older_than_minutes": 5, "dry_run": True})
    assert response.status_code == 200
    data = response.json()
    assert {k: data[k] for k in ("cancelled_count", "execution_ids", "message")} == {
        "cancelled_count": 1,
        "execution_ids": [ex.pk],
        "message": "Would cancel 1 stuck execution older than 5 minutes",
    }
    assert Execution.objects.get(pk=ex.pk).state == State.RUNNING
    # Both fields are optional: an empty body cancels with the defaults.
    response = _post(client, key, "")
    data = response.json()
    assert data["execution_ids"] == [ex.pk] and data["cancelled_count"] == 1
    assert data["message"] == "Cancelled 1 stuck execution older than 5 minutes"
    assert (audit(ex).cause, audit(ex).actor) == ("api", "alice")


@pytest.mark.parametrize(
    "body, message",
    [
        ({"older_than_minutes": 0}, "older_than_minutes: must be at least 1, got 0"),
        (
            {"older_than_minutes": "5"},
            "older_than_minutes: must be an integer, got '5'",
        ),
        (
            {"older_than_minutes": 2.5},
            "older_than_minutes: must be an integer, got 2.5",
        ),
        (
            {"older_than_minutes": True},
            "older_than_minutes: must be an integer, got True",
        ),
        ({"dry_run": "yes"}, "dry_run: must be true or false, got 'yes'"),
        ({"older_than_minute": 5}, "unknown field(s) older_than_minute; allowed:"),
        ([5], "the body must be a JSON object ({...}), not a list"),
        (None, "the body must be a JSON object ({...}), not null"),
        ('"x"', "the body must be a JSON object ({...}), not a string"),
        ({"max": 0}, "max: must be at least 1, got 0"),
        ({"max": 10**12}, "max: must be at most 1000000, got 1000000000000"),
        ({"older_than_minutes": 10**20}, "older_than_minutes: must be at most"),
        ({"namespace": 5}, "namespace: must be a string, got 5"),
    ],
)
def test_rest_rejects_bad_bodies_with_a_clear_message(
    client, alice, recorder, body, message
):
    Role.objects.create(user=alice, role="operator", namespace="")
    _, key = ApiToken.issue(alice, "ci")
    ex = make_execution()
    response = _post(client, key, body)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert Execution.objects.get(pk=ex.pk).state == State.RUNNING
    assert not CleanupRun.objects.exists()


def test_rest_needs_a_token_and_the_operator_role(client, alice, recorder):
    ex = make_execution(ns="team.a")
    assert _post(client, "orc_nope", {}).status_code == 401
    Role.objects.create(user=alice, role="viewer", namespace="team")
    _, key = ApiToken.issue(alice, "ci")
    denied = _post(client, key, {"namespace": "team.a"})
    assert (
        denied.status_code == 403
        and "operator role on namespace 'team.a'" in (denied.json()["detail"])
    )
    # Without a namespace: nothing of theirs to cancel; the stuck one is listed apart.
    data = _post(client, key, {}).json()
    assert data["execution_ids"] == [] and data["cancelled_count"] == 0
    assert [row["id"] for row in data["not_permitted"]] == [ex.pk]
    assert Execution.objects.get(pk=ex.pk).state == State.RUNNING


# --- web --------------------------------------------------------------------
def test_web_preview_then_confirm_acts_on_the_previewed_ids(client, alice, recorder):
    Role.objects.create(user=alice, role="operator", namespace="team")
    client.force_login(alice)
    stuck = make_execution(ns="team.a")
    spared = make_execution(ns="team.a")
    worker = make_worker()
    make_taskrun(spared, worker=worker)
    page = client.get("/stuck/")
    assert page.status_code == 200 and b'id="stuck-count">1<' in page.content
    bad = client.post("/stuck/preview", {"older_than_minutes": "0"})
    assert bad.status_code == 400 and b"greater than or equal to 1" in bad.content
    response = client.post(
        "/stuck/preview", {"older_than_minutes": "5", "namespace": "team"}
    )
    assert response.status_code == 302
    run = CleanupRun.objects.get()
    preview = client.get(response["Location"]).content.decode()
    assert f'data-id="{stuck.pk}"' in preview and "stalled" in preview
    assert "Spared (1)" in preview and worker.name in preview
    late = make_execution(ns="team.a")  # appears after the preview: not touched
    done = client.post(f"/stuck/{run.pk}/confirm", {"confirm": "yes"}, follow=True)
    assert b"Cancelled 1 stuck execution older than 5 minutes" in done.content
    assert Execution.objects.get(pk=stuck.pk).state == State.CANCELLED
    assert Execution.objects.get(pk=late.pk).state == State.RUNNING
    assert audit(stuck).details["cleanup_run"] == run.pk
    # Someone else's preview is not visible, let alone confirmable.
    bob = get_user_model().objects.create_user("bob")
    client.force_login(bob)
    assert client.get(f"/stuck/{run.pk}/").status_code == 404
    assert (
        client.post(f"/stuck/{run.pk}/confirm", {"confirm": "yes"}).status_code == 404
    )


def test_bulk_transitions_refuse_illegal_or_stale_moves_and_change_nothing():

    running, done = make_execution(), make_execution(State.SUCCESS)
    with pytest.raises(machine.IllegalTransition):
        machine.transition_many(
            [(running.pk, "RUNNING"), (done.pk, "SUCCESS")],
            "CANCELLED",
            actor=Actor("user", ""),
        )
    with pytest.raises(machine.StaleState):
        machine.transition_many(
            [(running.pk, "RUNNING"), (done.pk, "RUNNING")],
            "CANCELLED",
            actor=Actor("user", ""),
        )
    assert Execution.objects.get(pk=running.pk).state == State.RUNNING
    assert not StateChange.objects.exists()
    # Task runs that moved meanwhile are left alone, without a history row.
    tr = make_taskrun(running, State.CREATED)
    moved = make_taskrun(running, State.CREATED, task_id="other")
    TaskRun.objects.filter(pk=moved.pk).update(state=State.RUNNING)
    assert (
        machine.transition_taskruns_many(
            [(tr.pk, running.pk, "CREATED"), (moved.pk, running.pk, "CREATED")],
            "CANCELLED",
            actor=Actor("user", ""),
        )
        == 1
    )
    assert TaskRun.objects.get(pk=moved.pk).state == State.RUNNING
    assert list(StateChange.objects.values_list("taskrun_id", flat=True)) == [tr.pk]


def test_the_management_command_runs_the_automatic_cleanup(recorder):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("stuck_auto_cleanup", stdout=out)
    assert "no namespace has automatic cleanup enabled" in out.getvalue()
    make_execution(ns="ops", age=120)
    AutoCleanup.objects.create(namespace="ops", enabled=True, older_than_minutes=60)
    call_command("stuck_auto_cleanup", stdout=out)
    assert "ops: cancelled 1" in out.getvalue()


LIMITED = """
id: job
namespace: team.etl
concurrency:
  limit: 1
  behavior: QUEUE
tasks:
  - id: work
    type: Sleep
    duration: PT1M
"""

ON_CANCEL = """
id: page_oncall
namespace: team.ops
tasks:
  - id: say
    type: Log
    message: "{{ trigger.executionId }} ended {{ trigger.state }}"
triggers:
  - id: on_cancel
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [CANCELLED]
"""


def test_a_bulk_cancel_frees_slots_fires_flow_triggers_and_closes_deadlines(
    recorder,
):
    """The cleanup moves executions in bulk; everything that reacts to one
    execution ending must react the same way to many."""
    from flows.models import save_flow
    from flows.namespaces import set_allowed_namespaces
    from sla.models import Deadline, DeadlineState

    # team.ops hears of team.etl's runs only because team.etl allows it.
    set_allowed_namespaces(
        "team.etl", ["team.ops"], actor="test", via="cli", reason="t"
    )
    _, revision, _ = save_flow(LIMITED, actor="test")
    save_flow(ON_CANCEL, actor="test")
    holders = []
    for _ in range(3):
        holder = make_execution()
        Execution.objects.filter(pk=holder.pk).update(flow_revision=revision)
        make_taskrun(holder, worker=make_worker(alive=False))
        Deadline.objects.create(
            execution=holder,
            key="rule",
            level="SLA",
            threshold=timezone.timedelta(hours=2),
            due_at=timezone.now() + timezone.timedelta(hours=1),
        )
        holders.append(holder)
    queued = make_execution(State.QUEUED, age=1)
    Execution.objects.filter(pk=queued.pk).update(flow_revision=revision)

    run, _ = cleanup.preview(older_than_minutes=5, actor=Actor(Cause.USER, "alice"))
    assert run.preview_ids == [h.pk for h in holders]
    cleanup.confirm(run, actor=Actor(Cause.USER, "alice"))

    # The slot the stuck ones held is given to the queued execution.
    queued.refresh_from_db()
    assert queued.state == State.CREATED
    assert StateChange.objects.get(execution=queued, to_state=State.CREATED).reason
    # One pending flow-trigger event per cancelled execution.
    from executions.models import TriggerEvent

    events = TriggerEvent.objects.filter(flow_id="page_oncall")
    assert sorted(events.values_list("source_execution_id", flat=True)) == [
        h.pk for h in holders
    ]
    # Their SLA deadlines were met (they ended before being due): closed.
    assert set(
        Deadline.objects.filter(execution__in=holders).values_list("state", flat=True)
    ) == {DeadlineState.MET}


def test_a_confirm_cut_short_keeps_what_it_cancelled_and_says_it_did_not_finish(
    client, alice, recorder, monkeypatch
):
    Role.objects.create(user=alice, role="operator", namespace="team")
    first, second = make_execution(age=40), make_execution(age=30)
    run, _ = cleanup.preview(
        older_than_minutes=5, actor=Actor(Cause.USER, "alice", alice)
    )
    assert run.preview_ids == [first.pk, second.pk]
    real = cleanup._cancel_batch
    calls = []

    def dies_on_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("process killed")  # stands in for SIGKILL
        return real(*args, **kwargs)

    monkeypatch.setattr(cleanup, "BATCH", 1)
    monkeypatch.setattr(cleanup, "_cancel_batch", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        cleanup.confirm(run, actor=Actor(Cause.USER, "alice", alice))
    run.refresh_from_db()
    assert run.status == CleanupRun.Status.RUNNING
    assert run.cancelled_ids == [first.pk]
    assert Execution.objects.get(pk=second.pk).state == State.RUNNING
    client.force_login(alice)
    page = client.get(f"/stuck/{run.pk}/").content.decode()
    assert "Not finished:" in page and "cancelled 1 of 2 so far" in page
