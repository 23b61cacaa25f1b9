"""Every API error is JSON ``{"detail": ...}`` with the right status, whatever
the failure, and a body that is not a JSON object is refused everywhere
before anything changes. The schema documents each answer's fields."""

from __future__ import annotations

import json

import pytest

from executions.models import CleanupRun, Execution
from flows.models import Flow

from .conftest import FLOW


@pytest.fixture
def admin_headers(db, token_for):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "", "pw-root-123")
    return token_for(root)


def _detail(response, status: int) -> str:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body["detail"]


def test_a_body_over_the_limit_is_a_json_413(client, admin_headers, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = json.dumps({"older_than_minutes": 5, "pad": "x" * 5000})
    for url in ("/api/executions/cleanup", "/api/flows", "/api/sla/rules"):
        response = client.post(
            url, big, content_type="application/json", headers=admin_headers
        )
        assert "larger than the limit of 1000 bytes" in _detail(response, 413)
    assert not CleanupRun.objects.exists()


def test_a_form_field_over_the_limit_is_a_json_413_and_starts_nothing(
    client, admin_headers, deploy, settings
):
    deploy(FLOW)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post(
        "/api/executions/company.data/etl", {"day": "x" * 5000}, headers=admin_headers
    )
    assert "larger than the limit" in _detail(response, 413)
    assert not Execution.objects.exists()


def test_yaml_to_a_json_endpoint_is_a_415_and_flows_still_take_yaml(
    client, admin_headers
):
    yaml = "older_than_minutes: 5\ndry_run: false\n"
    for url in ("/api/executions/cleanup", "/api/executions/bulk", "/api/sla/rules"):
        response = client.post(
            url, yaml, content_type="application/x-yaml", headers=admin_headers
        )
        assert "application/x-yaml" in _detail(response, 415)
    assert not CleanupRun.objects.exists()
    created = client.post(
        "/api/flows", FLOW, content_type="text/yaml", headers=admin_headers
    )
    assert created.status_code == 201 and created.json()["id"] == "etl"


@pytest.mark.parametrize(
    "raw, kind",
    [("null", "null"), ("[]", "a list"), ('"x"', "a string"), ("5", "a number")],
)
def test_a_json_body_that_is_not_an_object_is_a_400_everywhere(
    client, admin_headers, deploy, make_execution, raw, kind
):
    deploy(FLOW)
    running = make_execution(state="RUNNING")
    posts = [
        "/api/executions/cleanup",
        "/api/executions/bulk",
        f"/api/executions/{running.pk}/kill",
        f"/api/executions/{running.pk}/restart",
        f"/api/executions/{running.pk}/replay",
        f"/api/executions/{running.pk}/resume",
        "/api/executions/company.data/etl",
        "/api/flows",
        "/api/flows/validate",
        "/api/flows/company.data/etl/triggers/daily/backfill",
        "/api/sla/rules",
    ]
    before = Execution.objects.count()
    for url in posts:
        response = client.post(
            url, raw, content_type="application/json", headers=admin_headers
        )
        assert f"not {kind}" in _detail(response, 400), url
    put = client.put(
        "/api/flows/company.data/etl",
        raw,
        content_type="application/json",
        headers=admin_headers,
    )
    assert f"not {kind}" in _detail(put, 400)
    assert Execution.objects.count() == before
    assert Execution.objects.get(pk=running.pk).state == "RUNNING"
    assert not CleanupRun.objects.exists()
    assert Flow.objects.get(flow_id="etl").revision == 1


def test_malformed_json_and_unknown_urls_are_json(client, admin_headers):
    response = client.post(
        "/api/executions/cleanup",
        "{not json",
        content_type="application/json",
        headers=admin_headers,
    )
    assert "JSON parse error" in _detail(response, 400)
    assert "no API endpoint" in _detail(
        client.get("/api/nope", headers=admin_headers), 404
    )
    # An id that is not a number is a missing execution, not a wrong method.
    assert _detail(client.get("/api/executions/abc/logs", headers=admin_headers), 404)
    assert "credentials" in _detail(client.get("/api/executions"), 401)


def test_the_documented_execution_has_every_field_the_answer_has(
    client, admin_headers, make_execution
):
    schema = client.get("/api/schema/?format=json", headers=admin_headers).json()
    components = schema["components"]["schemas"]
    execution = make_execution(state="FAILED")
    answer = client.get(f"/api/executions/{execution.pk}", headers=admin_headers)
    detail = components["ExecutionDetailOut"]
    assert set(answer.json()) == set(detail["properties"]) == set(detail["required"])
    assert {
        "attempt",
        "scheduledDate",
        "parentTaskRunId",
        "parent",
        "children",
        "childrenCount",
        "original",
        "replays",
        "replaysCount",
    } <= set(detail["properties"])
    listed = client.get("/api/executions", headers=admin_headers).json()["results"]
    assert set(listed[0]) == set(components["ExecutionOut"]["properties"])
    # Each operation documents the error shape for its error statuses.
    kill = schema["paths"]["/api/executions/{id}/kill"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "415"} <= set(kill)
    assert kill["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def test_a_browser_gets_json_not_an_html_page(client, admin_headers):
    html = {"Accept": "text/html,application/xhtml+xml", **admin_headers}
    assert "no execution 999" in _detail(
        client.get("/api/executions/999", headers=html), 404
    )
    listed = client.get("/api/executions", headers=html)
    assert listed["Content-Type"] == "application/json"
    assert listed.json()["results"] == []
    anonymous = client.get("/api/flows", headers={"Accept": "text/html"})
    assert "credentials" in _detail(anonymous, 401)
    schema = client.get("/api/schema/", headers=html)
    assert schema.status_code == 200 and b"openapi:" in schema.content
