"""The API contract: schemathesis generates requests from the live /api/schema/
and sends them through the WSGI app with the token of each role; every answer
must be one the schema documents (status code, content type, body shape,
headers) and none may be a server error."""

from __future__ import annotations

import os

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

# CI keeps this bounded; the long run (bench/api_contract.py) raises it.
EXAMPLES = int(os.environ.get("ORCHESTRA_CONTRACT_EXAMPLES", "4"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
ROLES = [None, "none", roles.VIEWER, roles.EDITOR, roles.ADMIN]


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
    user = get_user_model().objects.create_user(f"u-{role}", password="pw-x-12345")
    if role != "none":
        Role.objects.create(user=user, role=role, namespace="company")
    _, key = ApiToken.issue(user, "contract")
    return {"Authorization": f"Bearer {key}"}


def _walk(operation, mode, role, headers: dict, examples: int, failures: list):
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


def run_contract(api_schema, examples: int) -> tuple[int, list[str]]:
    """Every operation, positive and negative data, as each role; returns the
    number of operations walked and the mismatches found."""
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for role in ROLES:
        headers = _headers(role)
        for operation in operations:
            for mode in (
                schemathesis.GenerationMode.POSITIVE,
                schemathesis.GenerationMode.NEGATIVE,
            ):
                _walk(operation, mode, role, headers, examples, failures)
    return len(operations), failures


def test_every_answer_matches_the_schema(api_schema):
    count, failures = run_contract(api_schema, EXAMPLES)
    assert count >= 25
    assert not failures, f"{len(failures)} mismatches:\n\n" + "\n\n".join(failures[:15])
