"""Overview, namespaces, audit log and the live parts of the executions pages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from executions.lifecycle.actor import Actor
from executions.lifecycle.stop import kill
from executions.models import LogEntry, StateChange

pytestmark = pytest.mark.django_db


def test_overview_counts_only_what_the_user_may_see(
    client, alice, carol, make_execution
):
    make_execution(
        state="FAILED", error="task 'extract' failed: boom", age=timedelta(hours=2)
    )
    make_execution(state="SUCCESS", age=timedelta(hours=3))
    make_execution(
        state="SUCCESS", age=timedelta(days=3)
    )  # outside 24 h, inside 7 days
    make_execution(namespace="other", state="FAILED", error="other team's failure")
    client.force_login(alice)
    day = client.get("/")
    assert dict(day.context["by_state"]) == {"FAILED": 1, "SUCCESS": 1}
    assert (
        sum(b["total"] for b in day.context["bars"]) == 2
        and len(day.context["bars"]) == 24
    )
    assert b"boom" in day.content and b"other team" not in day.content
    week = client.get("/?window=7d")
    assert dict(week.context["by_state"]) == {"FAILED": 1, "SUCCESS": 2}
    client.force_login(carol)
    assert b"other team&#x27;s failure" in client.get("/").content


def test_namespaces_page_lists_visible_namespaces_with_counts(
    client, alice, deploy, make_execution
):
    from .conftest import FLOW

    deploy(FLOW)
    deploy(FLOW.replace("company.data", "other"))
    make_execution(state="RUNNING")
    make_execution(state="FAILED")
    client.force_login(alice)
    rows = {r["name"]: r for r in client.get("/namespaces/").context["rows"]}
    assert set(rows) == {"company", "company.data"}
    assert rows["company.data"]["flow_ids"] == ["etl"]
    assert (
        rows["company.data"]["flows"],
        rows["company.data"]["total"],
        rows["company.data"]["running"],
        rows["company.data"]["failed"],
    ) == (1, 2, 1, 1)


def test_audit_log_shows_people_and_sweeps_not_the_engine(
    client, alice, carol, make_execution
):
    running = make_execution(state="RUNNING")
    kill(running.pk, reason="wrong input", actor=Actor("user", "alice"))
    StateChange.objects.create(
        execution=running,
        from_state="RUNNING",
        to_state="RUNNING",
        cause="executor",
        reason="engine noise",
    )
    client.force_login(alice)
    page = client.get("/audit/")
    rows = page.context["rows"]
    assert [(r.actor, r.to_state, r.reason) for r in rows] == [
        ("alice", "KILLED", "wrong input")
    ]
    assert client.get("/audit/?cause=sweep").context["rows"] == []
    assert client.get("/audit/?cause=bogus").status_code == 400
    client.force_login(carol)
    assert client.get("/audit/").context["rows"] == []


def test_running_rows_and_logs_refresh_until_the_execution_ends(
    client, alice, make_execution
):
    running = make_execution(state="RUNNING", logs=["first"])
    done = make_execution(state="SUCCESS")
    client.force_login(alice)
    listing = client.get("/executions/").content.decode()
    assert f'hx-get="/executions/{running.pk}/status/" hx-trigger="every 3s"' in listing
    assert f"/executions/{done.pk}/status/" not in listing
    cell = client.get(f"/executions/{running.pk}/status/").content.decode()
    assert cell.strip().startswith("<td") and "RUNNING" in cell

    detail = client.get(f"/executions/{running.pk}/").content.decode()
    last = LogEntry.objects.get(execution=running).pk
    assert f"/executions/{running.pk}/logs/?after={last}" in detail
    LogEntry.objects.create(execution=running, message="second")
    more = client.get(f"/executions/{running.pk}/logs/?after={last}").content.decode()
    assert "second" in more and "first" not in more and "every 1s" in more
    kill(running.pk, actor=Actor("user", "alice"))
    ended = client.get(
        f"/executions/{running.pk}/logs/?after={last + 1}"
    ).content.decode()
    assert "hx-trigger" not in ended
    live = client.get(f"/executions/{running.pk}/live/").content.decode()
    assert "KILLED" in live and "hx-trigger" not in live


def test_a_long_state_history_is_capped_with_a_way_to_see_it_all(
    client, bob, make_execution
):
    from executions.models import TaskRun

    execution = make_execution()
    runs = TaskRun.objects.bulk_create(
        TaskRun(execution=execution, task_id="each", value=f"item-{i}", state="SUCCESS")
        for i in range(400)
    )
    StateChange.objects.bulk_create(
        StateChange(
            execution=execution,
            taskrun=tr,
            from_state="RUNNING",
            to_state="SUCCESS",
            at=execution.created_at,
            cause="worker",
        )
        for tr in runs
    )
    client.force_login(bob)
    page = client.get(f"/executions/{execution.pk}/").content.decode()
    assert "Showing the first 300 of 401 changes" in page
    row = 'task each <span class="hint">[item-{}]</span></td>'.format
    assert row(298) in page and row(350) not in page
    full = client.get(f"/executions/{execution.pk}/?history=all").content.decode()
    assert "Showing the first" not in full and row(399) in full


def test_an_empty_overview_says_how_to_start(client, bob):
    client.force_login(bob)
    page = client.get("/").content.decode()
    assert "No executions last 24 hours." in page and "peak" not in page
