"""Issue 12: a quick fuzz of every page and endpoint, as each role and as a
user with none: hostile query parameters, form fields and JSON bodies never
produce a server error."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tests.web.conftest import FLOW

VALUES = [
    "x" * 300,
    "99999999999999999999999",
    "2026-13-45",  # once a 500: YAML read it as a timestamp with month 13
    "[[[[[[[[",
]
KEYS = [
    "q",
    "namespace",
    "flow",
    "flow_id",
    "state",
    "labels",
    "page",
    "cursor",
    "limit",
    "since",
    "until",
    "older_than_minutes",
    "max",
    "revision",
    "level",
    "rule",
    "window",
    "ids",
    "action",
    "source",
    "name",
    "sla",
    "slo",
    "reason",
    "from_task",
]
SKIP = ("/admin/", "/logout/", "/live/", "/logs/", "/api/schema", "/api/docs")


def _urls(patterns=None, prefix: str = ""):
    for p in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            yield from _urls(p.url_patterns, route)
        elif isinstance(p, URLPattern):
            yield route


def _fill(route: str, pk: int) -> str:
    route = route.lstrip("^").rstrip("$")
    route = re.sub(r"<int:\w+>", str(pk), route)
    route = route.replace("<str:namespace>", "company.data")
    route = route.replace("<str:flow_id>", "etl")
    route = re.sub(r"<(?:str|path):\w+>", "x", route)
    return "/" + route


@pytest.fixture
def everyone(db, client_for, eve, olga, nobody):
    from accounts.models import Role

    Role.objects.create(user=olga, role="viewer", namespace="company")
    return {
        "nobody": client_for(nobody),
        "viewer+operator": client_for(olga),
        "editor": client_for(eve),
    }


def test_no_input_makes_a_page_or_endpoint_fail(everyone, deploy, make_execution):
    deploy(FLOW)
    pk = make_execution(state="RUNNING").pk
    urls = sorted({_fill(r, pk) for r in _urls()} - {"/"} | {"/"})
    urls = [u for u in urls if not u.startswith(SKIP) and "(?P" not in u]
    failures = []
    for who, client in everyone.items():
        for url in urls:
            for value in VALUES:
                params = dict.fromkeys(KEYS, value)
                answers = [
                    client.get(url, params),
                    client.post(url, params),
                    client.post(
                        url, json.dumps(params), content_type="application/json"
                    ),
                ]
                for method, response in zip(
                    ("GET", "POST form", "POST json"), answers, strict=True
                ):
                    if response.status_code >= 500:
                        failures.append(f"{who} {method} {url} {value[:20]!r}")
    assert not failures, "\n".join(failures[:40])
