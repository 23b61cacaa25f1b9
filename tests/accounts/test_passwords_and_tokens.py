"""Issue 12 item 6: Django's password validators in the CLI and on the page,
expiring API tokens with a clear 401, and every account change audited."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import AccountEvent, ApiToken, Role
from orchestra.cli import main as orchestra

pytestmark = pytest.mark.django_db


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text + "\n"))


def test_cli_refuses_weak_passwords_and_creates_nothing(monkeypatch, capsys):
    _stdin(monkeypatch, "abc")
    assert orchestra(["users", "create", "dora", "--password-stdin"]) == 2
    err = capsys.readouterr().err
    assert "password refused" in err and "too short" in err
    _stdin(monkeypatch, "1234567890123")
    assert orchestra(["users", "create", "dora", "--password-stdin"]) == 2
    assert "entirely numeric" in capsys.readouterr().err
    _stdin(monkeypatch, "doraexplorer1")
    assert orchestra(["users", "create", "doraexplorer", "--password-stdin"]) == 2
    assert "too similar to the username" in capsys.readouterr().err
    assert not get_user_model().objects.exists()
    assert not AccountEvent.objects.exists()

    _stdin(monkeypatch, "a-long-enough-secret-7")
    code = orchestra(
        [
            *("users", "create", "dora", "--password-stdin"),
            *("--role", "viewer:team", "--reason", "joins team"),
        ]
    )
    assert code == 0
    events = list(
        AccountEvent.objects.order_by("id").values_list(
            "username", "via", "action", "detail", "reason"
        )
    )
    assert events == [
        ("dora", "cli", "user_created", "", "joins team"),
        ("dora", "cli", "role_granted", "viewer on team", "joins team"),
    ]


def test_cli_password_and_role_changes_are_checked_and_recorded(monkeypatch, capsys):
    user = get_user_model().objects.create_user("erin", password="old-secret-1234")
    _stdin(monkeypatch, "short")
    assert orchestra(["users", "password", "erin", "--password-stdin"]) == 2
    user.refresh_from_db()
    assert user.check_password("old-secret-1234")
    _stdin(monkeypatch, "a-new-secret-5678")
    assert orchestra(["users", "password", "erin", "--password-stdin"]) == 0
    user.refresh_from_db()
    assert user.check_password("a-new-secret-5678")
    assert orchestra(["users", "grant", "erin", "editor", "team", "--reason", "x"]) == 0
    assert orchestra(["users", "grant", "erin", "admin", "team"]) == 0
    assert orchestra(["users", "revoke", "erin", "team"]) == 0
    assert not Role.objects.filter(user=user).exists()
    assert list(
        AccountEvent.objects.filter(username="erin")
        .order_by("id")
        .values_list("action", "detail")
    ) == [
        ("password_changed", ""),
        ("role_granted", "editor on team"),
        ("role_granted", "admin on team (was editor)"),
        ("role_revoked", "admin on team"),
    ]


def test_tokens_expire_by_default_and_expired_or_revoked_ones_get_a_clear_401(
    client, capsys
):
    user = get_user_model().objects.create_user("finn", password="pw-finn-12345")
    assert orchestra(["users", "token", "finn", "--name", "ci"]) == 0
    key = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(user=user)
    left = token.expires_at - timezone.now()
    assert timedelta(days=89, hours=23) < left <= timedelta(days=90)
    event = AccountEvent.objects.get(action="token_created")
    assert event.via == "cli" and "'ci'" in event.detail

    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/me", headers=headers).status_code == 200

    token.expires_at = timezone.now() - timedelta(minutes=1)
    token.save()
    expired = client.get("/api/me", headers=headers)
    assert expired.status_code == 401
    assert expired.json()["detail"].startswith("API token 'ci' expired on ")
    assert "/account/tokens/" in expired.json()["detail"]

    token.expires_at = timezone.now() + timedelta(days=1)
    token.revoked_at = timezone.now()
    token.save()
    revoked = client.get("/api/me", headers=headers)
    assert revoked.status_code == 401
    assert revoked.json()["detail"].startswith("API token 'ci' was revoked on ")
    wrong = client.get("/api/me", headers={"Authorization": "Bearer orc_nope"})
    assert wrong.json()["detail"] == "invalid API token"

    for days in ("0", "366"):
        assert (
            orchestra(["users", "token", "finn", "--name", "x", "--expires-days", days])
            == 2
        )
        assert "--expires-days must be between 1 and 365" in capsys.readouterr().err


def test_password_page_needs_the_old_password_and_a_good_new_one(client):
    user = get_user_model().objects.create_user("gail", password="old-secret-1234")
    client.force_login(user)
    page = "/account/password/"
    wrong_old = client.post(
        page,
        {
            "old_password": "guess",
            "new_password1": "a-new-secret-5678",
            "new_password2": "a-new-secret-5678",
        },
    )
    assert wrong_old.status_code == 400
    assert b"Your old password was entered incorrectly" in wrong_old.content
    weak = client.post(
        page,
        {
            "old_password": "old-secret-1234",
            "new_password1": "password",
            "new_password2": "password",
        },
    )
    assert weak.status_code == 400 and b"This password is too common" in weak.content
    user.refresh_from_db()
    assert user.check_password("old-secret-1234")
    assert not AccountEvent.objects.exists()
    ok = client.post(
        page,
        {
            "old_password": "old-secret-1234",
            "new_password1": "a-new-secret-5678",
            "new_password2": "a-new-secret-5678",
        },
    )
    assert ok.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a-new-secret-5678")
    event = AccountEvent.objects.get()
    assert (event.action, event.actor, event.via) == ("password_changed", "gail", "web")
    assert client.get("/account/").status_code == 200  # still logged in


def test_a_user_revokes_only_their_own_tokens(client):
    User = get_user_model()
    hana = User.objects.create_user("hana", password="pw-hana-12345")
    ivan = User.objects.create_user("ivan", password="pw-ivan-12345")
    theirs, _ = ApiToken.issue(ivan, "ivan-ci")
    client.force_login(hana)
    assert client.post(f"/account/tokens/{theirs.pk}/revoke").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert client.get(f"/account/tokens/{theirs.pk}/revoke").status_code == 405
    bad = client.post("/account/tokens/", {"name": "x", "expires_days": "9999"})
    assert bad.status_code == 400 and not ApiToken.objects.filter(user=hana).exists()
