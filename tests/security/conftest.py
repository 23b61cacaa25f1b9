"""Fixtures of the security suite: a real Celery worker whose scripts run in
a given sandbox, a known secret in its environment to look for, and personas
for the attacks: ``nobody`` is logged in with no role at all; ``eve`` edits
``team.a`` only; ``olga`` operates ``team.a``."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts import roles
from accounts.models import Role
from orchestra.lib import sandbox
from tests.conftest import need
from tests.web.conftest import make_execution  # noqa: F401 (a fixture for the fuzz)

# Values only the worker's environment holds: a script that can print one of
# them has read the worker's memory or environment.
WORKER_SECRETS = {
    "SECRET_KEY": "worker-django-key-0d6f0c4e9b",
    "SECRET_TEAM_B_TOKEN": "dGVhbS1iLW9ubHktNGE3Yw==",
}


def need_bwrap(network: str = "host") -> None:
    """Skip (fail under ORCHESTRA_REQUIRE_SERVICES=1) when bubblewrap cannot
    run here exactly as the worker would run it."""
    box = sandbox.resolve("bwrap", "", network, ())
    need(
        not box.problem, f"needs bubblewrap (apt-get install bubblewrap): {box.problem}"
    )


@pytest.fixture
def sandboxed_worker(start_worker, postgres, redis_broker):
    """Start a real worker with scripts in ``mode`` (and its secrets set)."""

    def start(mode: str = "bwrap", name: str = "sec", **env: str):
        if mode == "bwrap":
            need_bwrap(env.get("ORCHESTRA_SCRIPT_NETWORK", "host"))
        return start_worker(
            name, env={**WORKER_SECRETS, "ORCHESTRA_SCRIPT_SANDBOX": mode, **env}
        )

    return start


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(name: str, role: str | None = None, namespace: str = ""):
    user = get_user_model().objects.create_user(name, password=f"pw-{name}-123")
    if role:
        Role.objects.create(user=user, role=role, namespace=namespace)
        roles.forget(user)
    return user


@pytest.fixture
def nobody(db):
    return _user("nobody")


@pytest.fixture
def eve(db):
    return _user("eve", "editor", "team.a")


@pytest.fixture
def olga(db):
    return _user("olga", "operator", "team.a")


@pytest.fixture
def client_for():
    def make(user) -> Client:
        client = Client(raise_request_exception=False)
        client.force_login(user)
        return client

    return make
