"""Personas and execution rows for the dashboard and API tests.

alice operates ``company``; bob only views ``company``; carol views ``other``
(she must never see or touch ``company``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts import roles
from accounts.models import ApiToken, Role
from executions.models import Execution, LogEntry, StateChange

FLOW = """id: etl
namespace: company.data
inputs:
  - id: day
    type: DATE
    required: false
  - id: size
    type: INT
    defaults: 3
tasks:
  - id: extract
    type: Log
    message: "extracting {{ inputs.size }}"
  - id: load
    type: Return
    format: "loaded"
"""


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # PBKDF2's real cost makes every persona take a second on a busy machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(name: str, role: str | None, namespace: str = ""):
    user = get_user_model().objects.create_user(name, password=f"pw-{name}-123")
    if role:
        Role.objects.create(user=user, role=role, namespace=namespace)
        roles.forget(user)
    return user


@pytest.fixture
def alice(db):
    return _user("alice", "operator", "company")


@pytest.fixture
def bob(db):
    return _user("bob", "viewer", "company")


@pytest.fixture
def carol(db):
    return _user("carol", "viewer", "other")


@pytest.fixture
def token_for():
    def issue(user) -> dict:
        _, key = ApiToken.issue(user, "tests")
        return {"Authorization": f"Bearer {key}"}

    return issue


@pytest.fixture
def make_execution(db):
    def make(
        namespace: str = "company.data",
        flow_id: str = "etl",
        state: str = "SUCCESS",
        age: timedelta = timedelta(minutes=5),
        labels: dict | None = None,
        logs: list[str] | None = None,
        **fields,
    ) -> Execution:
        created = timezone.now() - age
        fields.setdefault(
            "source",
            (
                f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n"
                "  - id: extract\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
            ),
        )
        execution = Execution.objects.create(
            namespace=namespace,
            flow_id=flow_id,
            state=state,
            labels=labels or {},
            created_at=created,
            started_at=created,
            progress_at=created,
            ended_at=None
            if state in ("RUNNING", "CREATED", "PAUSED")
            else created + timedelta(seconds=3),
            **fields,
        )
        StateChange.objects.create(
            execution=execution,
            from_state="",
            to_state=state,
            at=created,
            cause="trigger",
            reason="test row",
        )
        for message in logs or []:
            LogEntry.objects.create(
                execution=execution, task_id="extract", message=message
            )
        return execution

    return make
