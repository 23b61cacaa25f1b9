"""One filterset for pages and API: namespace with children, states, labels,
time window, trigger, id; keyset pages that neither skip nor repeat rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from executions.filters import DEFAULT_WINDOW, WINDOWS

pytestmark = pytest.mark.django_db


def page_ids(client, query: str) -> list[int]:
    response = client.get(f"/executions/?{query}")
    assert response.status_code == 200, response.content[:500]
    return [e.pk for e in response.context["page"].rows]


def api_ids(client, query: str, headers) -> list[int]:
    response = client.get(f"/api/executions?{query}", headers=headers)
    assert response.status_code == 200, response.content[:500]
    return [row["id"] for row in response.json()["results"]]


def test_it_filters_by_namespace_with_children_state_labels_trigger_and_id(
    client, alice, token_for, make_execution
):
    root = make_execution(namespace="company", state="FAILED", labels={"env": "prod"})
    child = make_execution(
        namespace="company.data",
        state="RUNNING",
        labels={"env": "prod", "team": "data"},
    )
    lookalike = make_execution(namespace="companyx", state="FAILED")
    triggered = make_execution(
        namespace="company.data",
        state="SUCCESS",
        trigger_id="nightly",
        labels={"env": "dev"},
    )
    client.force_login(alice)
    headers = token_for(alice)
    cases = {
        "namespace=company": {root.pk, child.pk, triggered.pk},
        "namespace=company.data": {child.pk, triggered.pk},
        "state=FAILED&state=RUNNING": {root.pk, child.pk},
        "labels=env:prod": {root.pk, child.pk},
        "labels=env:prod&labels=team:data": {child.pk},
        "labels=env:prod,team:data": {child.pk},
        "trigger=nightly": {triggered.pk},
        f"id={child.pk}": {child.pk},
        "flow=etl&state=SUCCESS": {triggered.pk},
    }
    for query, expected in cases.items():
        assert set(page_ids(client, query)) == expected, query
        assert set(api_ids(client, query, headers)) == expected, query
    # alice has no role on companyx: it never shows, even by id.
    assert page_ids(client, f"id={lookalike.pk}") == []


def test_the_default_window_is_bounded_and_presets_widen_it(
    client, alice, make_execution
):
    recent = make_execution(age=timedelta(days=1))
    old = make_execution(age=WINDOWS[DEFAULT_WINDOW][1] + timedelta(days=1))
    client.force_login(alice)
    assert page_ids(client, "") == [recent.pk]
    assert page_ids(client, "window=30d") == [recent.pk, old.pk]
    assert page_ids(client, "window=1h") == []
    # Searching by id finds an old execution whatever the window.
    assert page_ids(client, f"id={old.pk}") == [old.pk]
    after = (old.created_at - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    before = (old.created_at + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    assert page_ids(client, f"after={after}&before={before}") == [old.pk]


def test_keyset_pages_cover_every_row_once_even_with_equal_timestamps(
    client, alice, token_for, make_execution
):
    rows = [make_execution(age=timedelta(minutes=1)) for _ in range(30)]
    same = rows[0].created_at
    from executions.models import Execution

    Execution.objects.filter(pk__in=[r.pk for r in rows[:10]]).update(created_at=same)
    client.force_login(alice)
    first = client.get("/executions/")
    assert len(first.context["page"].rows) == 25
    second = client.get("/executions/" + first.context["next_url"])
    assert second.context.get("next_url") is None
    seen = [e.pk for e in first.context["page"].rows + second.context["page"].rows]
    assert sorted(seen) == sorted(r.pk for r in rows)
    # The API walks the same pages with next_cursor.
    headers = token_for(alice)
    body = client.get("/api/executions?size=20", headers=headers).json()
    more = client.get(
        f"/api/executions?size=20&cursor={body['next_cursor']}", headers=headers
    ).json()
    assert more["next_cursor"] is None
    assert sorted(r["id"] for r in body["results"] + more["results"]) == sorted(seen)


def test_bad_filters_are_refused_with_a_message(client, alice, token_for):
    client.force_login(alice)
    page = client.get("/executions/?labels=justakey&state=NOPE")
    assert page.status_code == 400
    assert b"must be key:value" in page.content
    api = client.get("/api/executions?labels=justakey", headers=token_for(alice))
    assert api.status_code == 400
    assert "labels" in api.json()["detail"] and "key:value" in api.json()["detail"]
    cursor = client.get("/api/executions?cursor=garbage!", headers=token_for(alice))
    assert cursor.status_code == 400
    assert "cursor" in cursor.json()["detail"]
