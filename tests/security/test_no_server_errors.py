"""Issue 12: no 500 from user input, for every role including none."""

from __future__ import annotations

import json

import pytest

from executions.models import CleanupRun
from sla.models import SlaRule
from tests.web.conftest import FLOW


@pytest.mark.parametrize(
    ("method", "url", "data"),
    [
        ("get", "/", None),
        ("get", "/stuck/", None),
        ("post", "/stuck/preview", {"older_than_minutes": "5"}),
        ("get", "/executions/", None),
        ("get", "/flows/", None),
        ("get", "/namespaces/", None),
        ("get", "/sla/", None),
        ("get", "/audit/", None),
    ],
)
def test_a_user_with_no_role_gets_pages_not_errors(
    method, url, data, nobody, client_for, deploy, postgres
):
    deploy(FLOW)
    response = getattr(client_for(nobody), method)(url, data or {})
    assert response.status_code in (200, 302), response.content[:300]


def test_a_user_with_no_role_previews_a_cleanup_of_nothing(
    nobody, client_for, deploy, postgres
):
    deploy(FLOW)
    response = client_for(nobody).post(
        "/api/executions/cleanup",
        json.dumps({"older_than_minutes": 5, "dry_run": True}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content[:300]
    assert response.json()["execution_ids"] == []


@pytest.mark.parametrize("value", [10**12, 2**63])
def test_a_huge_cleanup_cap_is_400(value, nobody, client_for):
    client = client_for(nobody)
    response = client.post(
        "/api/executions/cleanup",
        json.dumps({"dry_run": True, "max": value}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "max: must be at most 1000000" in response.json()["detail"]
    page = client.post("/stuck/preview", {"older_than_minutes": "5", "max": str(value)})
    assert page.status_code == 400
    assert not CleanupRun.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/executions/?namespace=a%00b",
        "/api/executions?namespace=a%00b",
        "/flows/?q=%00",
        "/sla/misses/?flow=x%00",
        "/api/sla/misses?namespace=%00",
        "/flows/team%00a/x/",
    ],
)
def test_nul_bytes_in_parameters_are_400(url, eve, client_for):
    response = client_for(eve).get(url)
    assert response.status_code == 400, response.content[:300]
    assert b"NUL byte" in response.content


def test_nul_bytes_in_form_fields_are_400(eve, client_for):
    response = client_for(eve).post(
        "/sla/rules/new/", {"name": "r\x00", "namespace": "team.a", "sla": "1h"}
    )
    assert response.status_code == 400
    assert not SlaRule.objects.exists()


def test_a_namespace_over_255_characters_is_refused(client_for, db):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "", "pw-root-123")
    namespace = ".".join(["n" * 60] * 5)
    source = f"id: f\nnamespace: {namespace}\ntasks:\n  - id: t\n    type: Log\n    message: x\n"
    response = client_for(root).post("/api/flows", source, content_type="text/yaml")
    assert response.status_code == 422, response.content[:300]
    assert "at most 255 characters" in response.json()["detail"]


SLA_BASE = {"name": "r", "namespace": "team.a"}


@pytest.mark.parametrize(
    ("body", "status", "field", "message"),
    [
        ({"sla": "P99999999999D"}, 400, "sla", "longer than 100 years"),
        ({"sla": 10**30}, 400, "sla", "longer than 100 years"),
        ({"sla": ["PT1H"]}, 400, "sla", "not a list"),
        ({"sla": "PT1H", "labels": [1]}, 400, "labels", 'expected {"key": "value"}'),
        ({"sla": "PT1H", "labels": {"a=b": "c"}}, 400, "labels", "may not contain"),
        ({"sla": "PT1H", "labels": ["a"]}, 400, "labels", "must be key:value"),
    ],
)
def test_sla_rule_api_refuses_bad_values(body, status, field, message, eve, client_for):
    response = client_for(eve).post(
        "/api/sla/rules",
        json.dumps({**SLA_BASE, **body}),
        content_type="application/json",
    )
    assert response.status_code == status, response.content[:300]
    assert message in " ".join(response.json()["errors"][field])
    assert not SlaRule.objects.exists()


def test_sla_rule_api_reads_numbers_as_seconds_and_keeps_labels(eve, client_for):
    response = client_for(eve).post(
        "/api/sla/rules",
        json.dumps({**SLA_BASE, "sla": 60, "labels": {"env": "prod", "team": "a=b"}}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content[:300]
    rule = SlaRule.objects.get()
    assert rule.sla.total_seconds() == 60
    assert rule.labels == {"env": "prod", "team": "a=b"}
