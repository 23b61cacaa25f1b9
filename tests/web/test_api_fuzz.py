"""schemathesis generates requests from /api/schema/ and sends them through the
WSGI app, authenticated as a superuser: whatever it sends, no 5xx answer."""

from __future__ import annotations

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings

from accounts.models import ApiToken

from .conftest import FLOW


@pytest.fixture
def api_schema(request, db, deploy, make_execution, settings, auth_headers):
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
    return schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", get_wsgi_application(), headers=auth_headers
    )


@pytest.fixture
def auth_headers(db):
    root = get_user_model().objects.filter(username="fuzz").first() or (
        get_user_model().objects.create_superuser("fuzz", "", "pw-fuzz-123")
    )
    _, key = ApiToken.issue(root, "fuzz")
    return {"Authorization": f"Bearer {key}"}


def test_no_request_makes_the_api_fail(api_schema, auth_headers):
    # One test walking every operation, positive and negative data, a bounded
    # number of examples each (schemathesis' pytest plugin does not yet support
    # the pytest this project runs).
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        for mode in (
            schemathesis.GenerationMode.POSITIVE,
            schemathesis.GenerationMode.NEGATIVE,
        ):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=8,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                # A savepoint per request: one failing statement must not
                # abort the test's transaction and hide the next findings.
                with transaction.atomic():
                    response = case.call(headers=auth_headers)
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} -> "
                        f"{response.status_code}\n{case.as_curl_command()}"
                    )

            run()
    assert not failures, "\n\n".join(failures[:10])
