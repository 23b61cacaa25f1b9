"""Personas for the attacks: ``nobody`` is logged in with no role at all;
``eve`` edits ``team.a`` only; ``olga`` operates ``team.a``."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts import roles
from accounts.models import Role
from tests.web.conftest import make_execution  # noqa: F401 (a fixture for the fuzz)


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
