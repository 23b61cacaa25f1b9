"""Issue 12 item 6: login throttling. Five wrong passwords for one username
from one address lock that pair out for 15 minutes: even the right password
is refused, with a message saying when to try again; others are unaffected."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model

from accounts.models import AccountEvent

pytestmark = pytest.mark.django_db

RIGHT = "pw-alice-correct-42"


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password=RIGHT)


def _login(client, username, password, ip="10.0.0.1"):
    return client.post(
        "/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
    )


def test_five_failures_lock_out_even_the_right_password(client, alice):
    for _ in range(4):
        assert b"Wrong username or password" in _login(client, "alice", "nope").content
    fifth = _login(client, "alice", "nope")
    assert fifth.status_code == 429
    assert (
        "Too many failed attempts for 'alice' from your address: try again in 15 minutes."
        in html.unescape(fifth.content.decode())
    )

    during = _login(client, "alice", RIGHT)
    assert during.status_code == 429
    assert b"try again in 15 minutes" in during.content
    assert "_auth_user_id" not in client.session

    event = AccountEvent.objects.get(action="locked_out")
    assert (event.username, event.actor, event.via) == (
        "alice",
        "login throttle",
        "system",
    )
    assert "10.0.0.1" in event.detail and "15 minutes" in event.detail


def test_lockout_is_per_username_and_address_and_ends(client, alice):
    bob = get_user_model().objects.create_user("bob", password="pw-bob-correct-42")
    for _ in range(5):
        _login(client, "alice", "nope")
    # alice from another address, and bob from the same one, still get in.
    assert _login(client, "alice", RIGHT, ip="10.0.0.2").status_code == 302
    client.logout()
    assert _login(client, bob.username, "pw-bob-correct-42").status_code == 302
    client.logout()
    # Each refused attempt restarts the 15 minutes (django-axes counts from
    # the last failure); 16 minutes of quiet and the lock is over.
    attempt = AccessAttempt.objects.get(username="alice")
    attempt.attempt_time -= timedelta(minutes=16)
    attempt.save()
    assert _login(client, "alice", RIGHT).status_code == 302
    assert not AccessAttempt.objects.filter(username="alice").exists()
