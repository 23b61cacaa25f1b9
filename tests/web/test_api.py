"""The REST API as a script or CI job uses it: bearer tokens, YAML bodies,
JSON errors with a detail, roles per namespace, live follow."""

from __future__ import annotations

import json
import re

import pytest

from executions.models import Execution, LogEntry
from flows.models import Flow

from .conftest import FLOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(db):
    from .conftest import _user

    return _user("erin", "editor", "company")


def test_flows_crud_with_yaml_bodies_and_revisions(client, editor, token_for):
    headers = token_for(editor)
    created = client.post("/api/flows", FLOW, content_type="text/yaml", headers=headers)
    assert created.status_code == 201, created.content
    assert created.json()["revision"] == 1 and created.json()["source"] == FLOW
    again = client.post("/api/flows", FLOW, content_type="text/yaml", headers=headers)
    assert (
        again.status_code == 409
        and "PUT /api/flows/company.data/etl" in again.json()["detail"]
    )
    changed = FLOW.replace("loaded", "loaded v2")
    updated = client.put(
        "/api/flows/company.data/etl",
        json.dumps({"source": changed}),
        content_type="application/json",
        headers=headers,
    )
    assert updated.status_code == 200 and updated.json()["revision"] == 2
    old = client.get("/api/flows/company.data/etl?revision=1", headers=headers).json()
    assert old["source"] == FLOW
    revisions = client.get(
        "/api/flows/company.data/etl/revisions", headers=headers
    ).json()
    assert [r["revision"] for r in revisions] == [2, 1]
    assert [
        f["id"]
        for f in client.get("/api/flows?namespace=company", headers=headers).json()
    ] == ["etl"]
    moved = client.put(
        "/api/flows/company.data/etl",
        FLOW.replace("id: etl", "id: other"),
        content_type="text/yaml",
        headers=headers,
    )
    assert moved.status_code == 400 and "cannot change" in moved.json()["detail"]
    assert (
        client.delete("/api/flows/company.data/etl", headers=headers).status_code == 204
    )
    assert client.get("/api/flows/company.data/etl", headers=headers).status_code == 404


def test_invalid_yaml_is_refused_with_line_and_column_and_nothing_is_saved(
    client, editor, token_for
):
    headers = token_for(editor)
    bad = FLOW.replace("type: Return", "type: Retrun")
    response = client.post("/api/flows", bad, content_type="text/yaml", headers=headers)
    assert response.status_code == 422
    body = response.json()
    assert "did you mean" in body["detail"]
    assert body["errors"][0]["path"] == "tasks[1].type"
    assert body["errors"][0]["line"] == 15
    assert not Flow.objects.exists()
    check = client.post(
        "/api/flows/validate", bad, content_type="text/yaml", headers=headers
    ).json()
    assert check["valid"] is False and check["errors"][0]["line"] == 15
    ok = client.post(
        "/api/flows/validate",
        {"source": FLOW},
        content_type="application/json",
        headers=headers,
    ).json()
    assert ok == {
        "valid": True,
        "namespace": "company.data",
        "id": "etl",
        "errors": [],
        "warnings": [],
    }


def test_roles_decide_who_edits_reads_and_runs_flows(
    client, editor, alice, carol, token_for, deploy
):
    deploy(FLOW)
    as_alice, as_carol = token_for(alice), token_for(carol)
    assert (
        client.get("/api/flows/company.data/etl", headers=as_alice).status_code == 200
    )
    put = client.put(
        "/api/flows/company.data/etl", FLOW, content_type="text/yaml", headers=as_alice
    )
    assert put.status_code == 403
    assert (
        put.json()["detail"] == "you need the editor role on namespace 'company.data'"
    )
    assert (
        client.get("/api/flows/company.data/etl", headers=as_carol).status_code == 404
    )
    assert client.get("/api/flows", headers=as_carol).json() == []
    post = client.post("/api/flows", FLOW, content_type="text/yaml", headers=as_carol)
    assert post.status_code == 403
    assert (
        client.post(
            "/api/executions/company.data/etl",
            {},
            content_type="application/json",
            headers=as_carol,
        ).status_code
        == 404
    )
    assert not Execution.objects.exists()


def test_execute_with_json_inputs_and_labels_or_a_multipart_file(
    client, alice, token_for, deploy
):
    deploy(FLOW)
    headers = token_for(alice)
    response = client.post(
        "/api/executions/company.data/etl",
        {"inputs": {"size": "7"}, "labels": {"env": "prod"}},
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["inputs"] == {"day": None, "size": 7}
    assert body["labels"] == {"env": "prod"}
    assert body["trigger"] == {"type": "api", "user": "alice"}
    bad = client.post(
        "/api/executions/company.data/etl",
        {"inputs": {"size": "many"}},
        content_type="application/json",
        headers=headers,
    )
    assert bad.status_code == 400
    assert bad.json()["errors"] == {"size": "expected an integer, got 'many'"}
    assert Execution.objects.count() == 1

    deploy(
        FLOW.replace(
            "  - id: size\n    type: INT\n    defaults: 3\n",
            "  - id: size\n    type: INT\n    defaults: 3\n  - id: data\n    type: FILE\n",
        )
    )
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("rows.csv", b"a,b\n1,2\n")
    multi = client.post(
        "/api/executions/company.data/etl",
        {"data": upload, "size": "2", "labels": ["team:data"]},
        headers=headers,
    )
    assert multi.status_code == 201, multi.content
    uri = multi.json()["inputs"]["data"]
    from executions.storage import read_uri

    assert (
        uri.startswith("kestra:///company/data/etl/inputs/")
        and read_uri(uri) == b"a,b\n1,2\n"
    )
    assert multi.json()["labels"] == {"team": "data"}


def test_get_logs_kill_and_bulk_dry_run(client, alice, token_for, make_execution):
    headers = token_for(alice)
    running = make_execution(state="RUNNING", logs=["one", "two", "three"])
    got = client.get(f"/api/executions/{running.pk}", headers=headers).json()
    assert got["state"] == "RUNNING" and got["taskRuns"] == []
    logs = client.get(
        f"/api/executions/{running.pk}/logs?size=2", headers=headers
    ).json()
    assert [line["message"] for line in logs["results"]] == ["one", "two"] and logs[
        "more"
    ]
    rest = client.get(
        f"/api/executions/{running.pk}/logs?after={logs['last_id']}", headers=headers
    )
    assert [line["message"] for line in rest.json()["results"]] == ["three"]

    others = [make_execution(state="RUNNING") for _ in range(2)]
    dry = client.post(
        "/api/executions/bulk",
        {
            "action": "kill",
            "dry_run": True,
            "query": {"flow": "etl", "state": ["RUNNING"]},
        },
        content_type="application/json",
        headers=headers,
    ).json()
    assert sorted(dry["execution_ids"]) == sorted([running.pk] + [o.pk for o in others])
    assert Execution.objects.filter(state="RUNNING").count() == 3
    killed = client.post(
        f"/api/executions/{running.pk}/kill",
        {"reason": "stop"},
        content_type="application/json",
        headers=headers,
    )
    assert killed.status_code == 200 and killed.json()["state"] == "KILLED"
    twice = client.post(f"/api/executions/{running.pk}/kill", headers=headers)
    assert (
        twice.status_code == 400 and "already ended (KILLED)" in twice.json()["detail"]
    )
    real = client.post(
        "/api/executions/bulk",
        {"action": "kill", "ids": [o.pk for o in others]},
        content_type="application/json",
        headers=headers,
    ).json()
    assert real["count"] == 2 and real["message"] == "2 execution(s) killed"
    delete = client.delete(f"/api/executions/{running.pk}", headers=headers)
    assert delete.status_code == 403  # operators kill; editors delete


def test_follow_streams_state_logs_and_ends_when_the_execution_is_over(
    client, alice, token_for, make_execution
):
    finished = make_execution(state="SUCCESS", logs=["a", "b"])
    response = client.get(
        f"/api/executions/{finished.pk}/follow", headers=token_for(alice)
    )
    assert response["Content-Type"] == "text/event-stream"
    text = b"".join(response.streaming_content).decode()
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    kinds = [
        next(line[7:] for line in ev if line.startswith("event: ")) for ev in events
    ]
    assert kinds == ["state", "log", "log", "end"]
    assert '"message": "b"' in text
    first_log = LogEntry.objects.filter(execution=finished).order_by("id").first()
    resumed = client.get(
        f"/api/executions/{finished.pk}/follow",
        headers={**token_for(alice), "Last-Event-ID": str(first_log.pk)},
    )
    assert b'"message": "a"' not in b"".join(resumed.streaming_content)


def test_errors_are_json_with_a_detail(client, alice, token_for):
    headers = token_for(alice)
    assert client.get("/api/executions/999999", headers=headers).json() == {
        "detail": "no execution 999999"
    }
    unknown = client.get("/api/nothing-here", headers=headers)
    assert unknown.status_code == 404 and "no API endpoint" in unknown.json()["detail"]
    anonymous = client.get("/api/executions")
    assert anonymous.status_code == 401 and "detail" in anonymous.json()
    bulk = client.post(
        "/api/executions/bulk",
        {"action": "explode"},
        content_type="application/json",
        headers=headers,
    )
    assert bulk.status_code == 400 and bulk.json()["detail"].startswith(
        "invalid request: action"
    )


def test_the_schema_and_its_docs_page_are_served_without_a_cdn(client, alice):
    assert client.get("/api/schema/").status_code == 401  # like every page, login first
    client.force_login(alice)
    schema = client.get("/api/schema/", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {
        "/api/executions",
        "/api/executions/bulk",
        "/api/flows",
        "/api/executions/{id}/follow",
    } <= set(paths)
    names = {p["name"] for p in paths["/api/executions"]["get"]["parameters"]}
    assert {
        "namespace",
        "flow",
        "state",
        "labels",
        "window",
        "after",
        "before",
        "trigger",
        "id",
        "cursor",
        "size",
    } <= names
    docs = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs
    assert "cdn" not in docs.lower()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', docs)
    assert len(assets) >= 3
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


@pytest.mark.parametrize(
    "query",
    [
        "after=6650-01-26T10:25:21.8-20:34",  # an offset PostgreSQL refuses
        "after=9999-12-31T23:59:59-23:59",  # past year 9999 once in UTC
        "labels=a:%00",
        "flow=a%00b",
        "cursor=%00",
    ],
)
def test_hostile_filters_get_a_400_not_a_crash(client, alice, token_for, query):
    response = client.get(f"/api/executions?{query}", headers=token_for(alice))
    assert response.status_code in (200, 400), response.content
    client.force_login(alice)
    assert client.get(f"/executions/?{query}").status_code in (200, 400)


def test_nul_characters_in_bodies_are_refused(client, alice, editor, token_for, deploy):
    deploy(FLOW)
    headers = token_for(alice)
    for body in [
        {"inputs": {"size": "1\x00"}},
        {"labels": {"a\x00": "b"}},
        {"labels": ["a:\x00"]},
    ]:
        response = client.post(
            "/api/executions/company.data/etl",
            body,
            content_type="application/json",
            headers=headers,
        )
        detail = response.json()["detail"]
        assert response.status_code == 400, response.content
        assert "NUL" in detail or "null characters" in detail, detail
    created = client.post(
        "/api/flows",
        FLOW.replace("loaded", "lo\x00aded"),
        content_type="text/yaml",
        headers=token_for(editor),
    )
    assert created.status_code == 400
    assert not Execution.objects.exists()
