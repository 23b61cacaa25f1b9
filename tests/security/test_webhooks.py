"""Issue 12: webhook keys, wrong-key lockout, private headers, NUL bodies."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import Client

from executions.models import Execution
from flows.models import Flow, FlowRevision, save_flow
from flows.spec import FlowInvalid

KEY = "k3y-0123456789abcdef"
FLOW = f"""id: hook
namespace: team.a
tasks:
  - id: t
    type: Log
    message: "{{{{ trigger.headers }}}}"
triggers:
  - id: hook
    type: Webhook
    key: {KEY}
"""
URL = f"/api/executions/webhook/team.a/hook/{KEY}"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def hook(db):
    save_flow(FLOW, actor="test")


def test_a_new_flow_needs_a_key_of_16_characters(db):
    with pytest.raises(FlowInvalid, match="shorter than 16 characters") as caught:
        save_flow(FLOW.replace(KEY, "abcd"), actor="eve")
    assert caught.value.errors[0].path == "triggers.hook.key"
    assert not Flow.objects.exists()


def test_an_existing_short_key_keeps_working_with_a_warning(eve, client_for, db):
    # A flow saved before the rule, with a 6-character key.
    old = FLOW.replace(KEY, "abcdef")
    flow = Flow.objects.create(namespace="team.a", flow_id="hook", revision=1)
    FlowRevision.objects.create(flow=flow, revision=1, source=old, checksum="old")
    answer = client_for(eve).post("/api/flows/validate", old, content_type="text/yaml")
    assert answer.json()["valid"] is True
    assert "shorter than 16 characters" in answer.json()["warnings"][0]
    # Saving a change that keeps the key is allowed...
    save_flow(old.replace("message:", "description: x\n    message:"), actor="eve")
    assert (
        Client().post("/api/executions/webhook/team.a/hook/abcdef").status_code == 200
    )
    # ...a new short key is not.
    with pytest.raises(FlowInvalid):
        save_flow(old.replace("abcdef", "ghijkl"), actor="eve")


def test_wrong_keys_lock_out_the_client(hook, settings):
    settings.ORCHESTRA_WEBHOOK_MISSES_PER_CLIENT = 5
    guesser = Client(REMOTE_ADDR="10.0.0.9")
    answers = [
        guesser.post(URL.replace(KEY, f"guess-{i}")).status_code for i in range(8)
    ]
    assert answers == [404] * 5 + [429] * 3
    # Locked out: even the right key is refused, so the answer tells nothing.
    locked = guesser.post(URL)
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == settings.ORCHESTRA_WEBHOOK_MISS_WINDOW_SECONDS
    # Another client is not affected.
    assert Client(REMOTE_ADDR="10.0.0.10").post(URL).status_code == 200
    assert Execution.objects.count() == 1


def test_wrong_keys_from_many_clients_lock_the_flow(hook, settings):
    settings.ORCHESTRA_WEBHOOK_MISSES_PER_FLOW = 6
    for i in range(6):
        Client(REMOTE_ADDR=f"10.1.0.{i}").post(URL.replace(KEY, f"guess-{i}"))
    assert Client(REMOTE_ADDR="10.2.0.1").post(URL.replace(KEY, "x")).status_code == 429
    # Other flows' webhooks are not affected.
    save_flow(FLOW.replace("id: hook\n", "id: other\n", 1), actor="test")
    other = URL.replace("/hook/", "/other/")
    assert Client(REMOTE_ADDR="10.2.0.1").post(other).status_code == 200


def test_the_callers_credentials_are_never_stored_nor_shown(hook, olga, client_for):
    response = Client().post(
        URL,
        data=json.dumps({"a": 1}),
        content_type="application/json",
        headers={
            "Authorization": "Bearer caller-token-123",
            "Proxy-Authorization": "Basic cHJveHk=",
            "Cookie": "sessionid=caller-session-456",
            "X-Source": "ci",
        },
    )
    assert response.status_code == 200
    execution = Execution.objects.get(pk=response.json()["id"])
    headers = execution.trigger["variables"]["headers"]
    assert headers["x-source"] == ["ci"]
    assert not {"authorization", "proxy-authorization", "cookie"} & set(headers)
    stored = json.dumps(execution.trigger)
    page = client_for(olga).get(f"/executions/{execution.pk}/").content.decode()
    api = client_for(olga).get(f"/api/executions/{execution.pk}").content.decode()
    for secret in ("caller-token-123", "cHJveHk=", "caller-session-456"):
        assert secret not in stored
        assert secret not in page
        assert secret not in api


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"a": "x\\u0000y"}', "application/json"),
        ('{"a\\u0000": 1}', "application/json"),
        ("plain \x00 text", "text/plain"),
    ],
    ids=["json-value", "json-key", "text"],
)
def test_a_nul_in_the_body_is_400(hook, body, content_type):
    response = Client().post(URL, data=body, content_type=content_type)
    assert response.status_code == 400, response.content[:300]
    assert "NUL" in response.json()["message"]
    assert not Execution.objects.exists()


def test_a_deeply_nested_body_is_400(hook):
    response = Client().post(
        URL, data="[" * 3000 + "]" * 3000, content_type="application/json"
    )
    assert response.status_code == 400
    assert "nested" in response.json()["message"]
