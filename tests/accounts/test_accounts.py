"""Login, namespace roles and API tokens — as pages, the API and the CLI see them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts import roles
from accounts.models import ApiToken, Role
from executions.models import Execution
from orchestra.cli import main as orchestra

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password="pw-alice-123")


def grant(user, role, namespace=""):
    Role.objects.create(user=user, role=role, namespace=namespace)
    roles.forget(user)


def test_a_role_on_a_prefix_covers_child_namespaces_but_not_lookalikes(alice):
    grant(alice, "operator", "company.team")
    assert roles.has_role(alice, "company.team", "viewer")
    assert roles.has_role(alice, "company.team.etl", "operator")
    assert not roles.has_role(alice, "company.team", "editor")
    assert not roles.has_role(alice, "company.teams", "viewer")
    assert not roles.has_role(alice, "company", "viewer")


def test_namespace_filter_keeps_only_visible_executions(alice):
    for ns in ("company.team", "company.team.etl", "company.teams", "other"):
        Execution.objects.create(namespace=ns, flow_id="f")
    grant(alice, "viewer", "company.team")
    seen = set(
        Execution.objects.filter(roles.namespace_q(alice)).values_list(
            "namespace", flat=True
        )
    )
    assert seen == {"company.team", "company.team.etl"}
    # A user with no role sees nothing; a superuser sees everything.
    bob = get_user_model().objects.create_user("bob")
    assert not Execution.objects.filter(roles.namespace_q(bob)).exists()
    root = get_user_model().objects.create_superuser("root", "", "x")
    assert Execution.objects.filter(roles.namespace_q(root)).count() == 4


def test_pages_need_login_and_login_leads_back(client, alice):
    response = client.get("/account/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/account/")
    page = client.get(response["Location"])
    assert b"Log in to Orchestra" in page.content
    bad = client.post("/login/", {"username": "alice", "password": "wrong"})
    assert b"Wrong username or password" in bad.content
    ok = client.post(
        "/login/",
        {"username": "alice", "password": "pw-alice-123", "next": "/account/"},
    )
    assert ok.status_code == 302 and ok["Location"] == "/account/"
    assert b"alice" in client.get("/account/").content


def test_health_is_open_and_tells_anonymous_callers_no_details(client, alice):
    body = client.get("/api/health").json()
    assert body["status"] == "UP" and "details" not in body
    assert body["checks"]["database"] == body["checks"]["broker"] == "UP"
    assert set(body["checks"]) == {"database", "broker", "workers", "scheduler"}
    client.force_login(alice)
    signed_in = client.get("/api/health").json()
    assert signed_in["details"]["workers"] == 0
    assert signed_in["details"]["scheduler"] == {"lastBeat": None, "ageSeconds": None}


def test_api_takes_bearer_tokens_and_refuses_bad_ones(client, alice):
    assert client.get("/api/me").status_code in (401, 403)
    token, key = ApiToken.issue(alice, "ci")
    grant(alice, "viewer", "company")
    response = client.get("/api/me", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert response.json()["viewer_prefixes"] == ["company"]
    token.refresh_from_db()
    assert token.last_used_at is not None

    wrong = client.get("/api/me", headers={"Authorization": "Bearer orc_nope"})
    assert wrong.status_code == 401
    assert "invalid" in wrong.json()["detail"]
    malformed = client.get("/api/me", headers={"Authorization": "Bearer a b"})
    assert malformed.status_code == 401

    ApiToken.objects.filter(pk=token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert (
        client.get("/api/me", headers={"Authorization": f"Bearer {key}"}).status_code
        == 401
    )


def test_only_the_digest_of_a_token_is_stored(alice):
    token, key = ApiToken.issue(alice, "ci")
    assert key.startswith("orc_") and key not in (token.digest, token.hint)
    assert ApiToken.lookup(key) == token
    token.revoked_at = timezone.now()
    token.save()
    assert ApiToken.lookup(key) is None


def test_cli_creates_users_grants_roles_and_issues_tokens(capsys):
    assert (
        orchestra(["users", "create", "carol", "--role", "operator:company.team"]) == 0
    )
    out = capsys.readouterr().out
    assert "Password:" in out and "operator on company.team" in out
    carol = get_user_model().objects.get(username="carol")
    assert roles.has_role(carol, "company.team.etl", "operator")

    assert orchestra(["users", "create", "carol"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert orchestra(["users", "create", "dave", "--role", "boss:x"]) == 2
    assert "unknown role 'boss'" in capsys.readouterr().err

    assert orchestra(["users", "grant", "carol", "editor", "company"]) == 0
    assert "carol is now editor on company" in capsys.readouterr().out
    roles.forget(carol)
    assert roles.has_role(carol, "company.other", "editor")

    assert orchestra(["users", "token", "carol", "--name", "ci"]) == 0
    captured = capsys.readouterr()
    key = captured.out.strip()
    assert ApiToken.lookup(key).user == carol
    assert "shown only now" in captured.err

    assert orchestra(["users", "token", "nobody", "--name", "x"]) == 2
    assert "no user named 'nobody'" in capsys.readouterr().err
