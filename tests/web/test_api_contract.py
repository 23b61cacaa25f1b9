"""The API contract: schemathesis generates requests from the live /api/schema/
and sends them through the WSGI app with the token of each role; every answer
must be one the schema documents (status code, content type, body shape,
headers) and none may be a server error."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.failures import FailureGroup

from accounts import roles
from accounts.models import ApiToken, Role

from .conftest import FLOW

# CI keeps this bounded (about a minute); the long run raises it:
# ORCHESTRA_CONTRACT_EXAMPLES=100 .venv/bin/python bench/api_contract.py
EXAMPLES = int(os.environ.get("ORCHESTRA_CONTRACT_EXAMPLES", "3"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
# No token; a user with no role; viewer, editor and admin on the namespace that
# holds the test's flow and executions; a superuser.
ROLES = [None, "none", roles.VIEWER, roles.EDITOR, roles.ADMIN, "superuser"]


@pytest.fixture
def api_schema(request, db, deploy, make_execution, settings):
    from django.core.wsgi import get_wsgi_application

    # Like Django's test client: keep the test's connection (and transaction) open
    # between requests instead of closing it at the end of each one.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    request.addfinalizer(
        lambda: (
            signals.request_started.connect(close_old_connections),
            signals.request_finished.connect(close_old_connections),
        )
    )
    settings.ORCHESTRA_SSE_SECONDS = 0.3
    settings.ORCHESTRA_SSE_POLL_SECONDS = 0.05
    deploy(FLOW)
    make_execution(state="RUNNING", logs=["a"])
    make_execution(state="FAILED")
    root = get_user_model().objects.create_superuser("root", "", "pw-root-123")
    _, key = ApiToken.issue(root, "schema")
    return schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json",
        get_wsgi_application(),
        headers={"Authorization": f"Bearer {key}"},
    )


def _headers(role: str | None) -> dict:
    if role is None:
        return {}
    make = get_user_model().objects.create_user
    if role == "superuser":
        make = get_user_model().objects.create_superuser
    user = make(f"u-{role}", password="pw-x-12345")
    if role not in ("none", "superuser"):
        Role.objects.create(user=user, role=role, namespace="company")
    _, key = ApiToken.issue(user, "contract")
    return {"Authorization": f"Bearer {key}"}


def _walk(
    operation, mode, role, headers: dict, examples: int, failures: list, seen: Counter
):
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        # A savepoint per request: one failing statement must not abort the
        # test's transaction and hide the next findings.
        case.headers = {**(case.headers or {}), **headers}
        if role is None:
            case.headers.pop("Authorization", None)
        with transaction.atomic():
            response = case.call()
        seen[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                failures.append(
                    f"[{role}] {case.method} {operation.path} -> "
                    f"{response.status_code}: {failure.title}: "
                    f"{failure.message}"[:600]
                    + f"\n  body: {response.text[:300]}"
                    + f"\n  {case.as_curl_command()[:400]}"
                )

    run()


def run_contract(api_schema, examples: int) -> tuple[int, list[str], Counter]:
    """Every operation, positive and negative data, as each role; returns the
    number of operations walked, the mismatches found and the statuses seen."""
    failures: list[str] = []
    seen: Counter = Counter()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for role in ROLES:
        headers = _headers(role)
        for operation in operations:
            for mode in (
                schemathesis.GenerationMode.POSITIVE,
                schemathesis.GenerationMode.NEGATIVE,
            ):
                _walk(operation, mode, role, headers, examples, failures, seen)
    return len(operations), failures, seen


def test_every_answer_matches_the_schema(api_schema):
    started = time.monotonic()
    count, failures, seen = run_contract(api_schema, EXAMPLES)
    # Figures for the long run (bench/api_contract.py); -s shows them.
    print(
        f"\ncontract: {count} operations x {len(ROLES)} roles x 2 modes, "
        f"{EXAMPLES} examples max each: {sum(seen.values())} requests in "
        f"{time.monotonic() - started:.0f} s, {len(failures)} mismatches; "
        f"statuses {dict(sorted(seen.items()))}"
    )
    assert count >= 25
    assert not failures, f"{len(failures)} mismatches:\n\n" + "\n\n".join(failures[:15])
