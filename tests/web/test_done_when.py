"""The dashboard's main errand, end to end as a user meets it: find yesterday's
failed execution by filters, read its logs, restart it, bulk-kill the running
executions of one flow after seeing the confirmation list — and a viewer of
another namespace can do none of it (page, API or direct POST)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from executions.models import Execution, StateChange

pytestmark = pytest.mark.django_db


def yesterday_bounds() -> tuple[str, str]:
    today = timezone.localdate()
    start = datetime.combine(today - timedelta(days=1), time.min)
    end = datetime.combine(today, time.min)
    return start.strftime("%Y-%m-%dT%H:%M"), end.strftime("%Y-%m-%dT%H:%M")


def test_a_new_user_finds_yesterdays_failure_reads_logs_and_restarts_it(
    client, alice, make_execution
):
    today_start = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    age = timezone.now() - (today_start - timedelta(hours=12))  # yesterday at noon
    failed = make_execution(
        state="FAILED",
        age=age,
        logs=["connecting", "boom: table missing"],
        error="task 'extract' failed: boom",
    )
    make_execution(state="FAILED", age=timedelta(minutes=1))  # today, not yesterday
    make_execution(state="SUCCESS", age=age)  # yesterday, but fine
    make_execution(namespace="other", state="FAILED", age=age)  # not alice's

    login = client.post("/login/", {"username": "alice", "password": "pw-alice-123"})
    assert login.status_code == 302
    home = client.get("/")
    assert b'href="/executions/"' in home.content

    after, before = yesterday_bounds()
    found = client.get(f"/executions/?state=FAILED&after={after}&before={before}")
    assert [e.pk for e in found.context["page"].rows] == [failed.pk]
    assert f'href="/executions/{failed.pk}/"'.encode() in found.content

    detail = client.get(f"/executions/{failed.pk}/")
    assert b"boom: table missing" in detail.content
    assert b"task &#x27;extract&#x27; failed: boom" in detail.content

    assert f'action="/executions/{failed.pk}/restart/"'.encode() in detail.content
    response = client.post(
        f"/executions/{failed.pk}/restart/", {"reason": "fixed the table"}
    )
    assert response.status_code == 302
    change = StateChange.objects.filter(
        execution=failed, actor="alice", taskrun__isnull=True
    ).first()
    assert change is not None and change.to_state == "RESTARTED"


def test_bulk_kill_of_one_flows_running_executions_shows_the_list_first(
    client, alice, make_execution
):
    running = [make_execution(state="RUNNING") for _ in range(3)]
    other_flow = make_execution(state="RUNNING", flow_id="report")
    finished = make_execution(state="SUCCESS")
    client.force_login(alice)
    query = "namespace=company&flow=etl&state=RUNNING"
    listed = client.get(f"/executions/?{query}")
    assert {e.pk for e in listed.context["page"].rows} == {e.pk for e in running}

    preview = client.post(
        "/executions/bulk/",
        {
            "action": "kill",
            "all_matching": "yes",
            "query": query,
        },
    )
    assert preview.status_code == 200
    plan = preview.context["plan"]
    assert {r.execution.pk for r in plan.acting} == {e.pk for e in running}
    assert b"will be killed" in preview.content
    # Nothing happened yet.
    assert Execution.objects.filter(state="RUNNING").count() == 4

    # One finishes between the preview and the confirmation: it is skipped.
    Execution.objects.filter(pk=running[0].pk).update(state="SUCCESS")
    done = client.post(
        "/executions/bulk/",
        {
            "action": "kill",
            "confirm": "yes",
            "query": query,
            "reason": "bad deploy",
            "ids": [str(e.pk) for e in running],
        },
        follow=True,
    )
    assert done.status_code == 200
    states = dict(Execution.objects.values_list("pk", "state"))
    assert states[running[0].pk] == "SUCCESS"
    assert states[running[1].pk] == states[running[2].pk] == "KILLED"
    assert states[other_flow.pk] == "RUNNING" and states[finished.pk] == "SUCCESS"
    messages = [str(m) for m in done.context["messages"]]
    assert "2 execution(s) killed, 1 skipped." in messages
    kills = StateChange.objects.filter(to_state="KILLED", taskrun__isnull=True)
    assert {(c.actor, c.cause, c.reason) for c in kills} == {
        ("alice", "user", "bad deploy")
    }


def test_a_viewer_of_another_namespace_can_do_none_of_it(
    client, carol, token_for, make_execution
):
    failed = make_execution(state="FAILED", logs=["secret detail"])
    running = make_execution(state="RUNNING")
    client.force_login(carol)
    # Pages: the filters find nothing, detail and logs are 404.
    assert client.get("/executions/?window=all").context["page"].rows == []
    assert client.get(f"/executions/{failed.pk}/").status_code == 404
    assert client.get(f"/executions/{failed.pk}/logs/").status_code == 404
    # Direct POSTs: kill, restart and bulk refuse and change nothing.
    assert client.post(f"/executions/{running.pk}/kill/").status_code == 404
    client.post(f"/executions/{failed.pk}/restart/")
    preview = client.post("/executions/bulk/", {"action": "kill", "ids": [running.pk]})
    assert preview.context["plan"].rows == []
    client.post(
        "/executions/bulk/", {"action": "kill", "confirm": "yes", "ids": [running.pk]}
    )
    client.post(
        "/executions/bulk/",
        {
            "action": "kill",
            "all_matching": "yes",
            "query": "window=all",
            "confirm": "yes",
        },
    )
    # API: 404 for the execution, its logs and the actions; bulk skips as not found.
    headers = token_for(carol)
    client.logout()
    assert (
        client.get(f"/api/executions/{failed.pk}", headers=headers).status_code == 404
    )
    assert (
        client.get(f"/api/executions/{failed.pk}/logs", headers=headers).status_code
        == 404
    )
    assert (
        client.post(f"/api/executions/{running.pk}/kill", headers=headers).status_code
        == 404
    )
    assert (
        client.post(f"/api/executions/{failed.pk}/restart", headers=headers).status_code
        == 404
    )
    body = client.post(
        "/api/executions/bulk",
        {"action": "kill", "ids": [running.pk]},
        content_type="application/json",
        headers=headers,
    ).json()
    assert body["count"] == 0 and body["skipped"] == [
        {"id": running.pk, "reason": "not found"}
    ]
    assert (
        client.get("/api/executions?window=all", headers=headers).json()["results"]
        == []
    )
    running.refresh_from_db()
    failed.refresh_from_db()
    assert (running.state, failed.state) == ("RUNNING", "FAILED")
    assert not StateChange.objects.filter(actor="carol").exists()


def test_a_viewer_of_the_namespace_sees_but_cannot_act(
    client, bob, token_for, make_execution
):
    running = make_execution(state="RUNNING", logs=["working"])
    client.force_login(bob)
    detail = client.get(f"/executions/{running.pk}/")
    assert b"working" in detail.content
    assert b"/kill/" not in detail.content
    assert client.post(f"/executions/{running.pk}/kill/").status_code == 403
    preview = client.post("/executions/bulk/", {"action": "kill", "ids": [running.pk]})
    assert [r.refusal for r in preview.context["plan"].rows] == [
        "you need the operator role on namespace company.data"
    ]
    client.post(
        "/executions/bulk/", {"action": "kill", "confirm": "yes", "ids": [running.pk]}
    )
    api = client.post(f"/api/executions/{running.pk}/kill", headers=token_for(bob))
    assert api.status_code == 403
    assert api.json() == {
        "detail": "you need the operator role on namespace 'company.data'"
    }
    running.refresh_from_db()
    assert running.state == "RUNNING"
