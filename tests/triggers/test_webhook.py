"""Webhook triggers through Django's HTTP stack (no login: the key is the secret)."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client

from executions.models import Execution, State
from flows.models import save_flow

FLOW = """
id: hook
namespace: tests.hooks
inputs:
  - id: who
    type: STRING
    defaults: nobody
tasks:
  - id: r
    type: Return
    format: "{{ trigger.body.user | default('?') }} via {{ trigger.headers['x-source'][0] | default('-') }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cr3t-key-0123456789
    inputs:
      who: "{{ trigger.body.user | default('anonymous') }}"
    conditions:
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{ trigger.body is none or trigger.body.skip is not defined }}"
"""
URL = "/api/executions/webhook/tests.hooks/hook/s3cr3t-key-0123456789"


@pytest.fixture
def hook(db):
    save_flow(FLOW, actor="test")


def test_a_post_with_json_starts_an_execution_with_body_and_headers(hook):
    response = Client().post(
        URL,
        data=json.dumps({"user": "ada", "n": 3}),
        content_type="application/json",
        headers={"X-Source": "ci"},
    )
    assert response.status_code == 200
    data = response.json()
    execution = Execution.objects.get(pk=data["id"])
    assert (data["namespace"], data["flowId"], data["state"]) == (
        "tests.hooks",
        "hook",
        "CREATED",
    )
    variables = execution.trigger["variables"]
    assert variables["body"] == {"user": "ada", "n": 3}
    assert variables["headers"]["x-source"] == ["ci"]
    assert variables["method"] == "POST"
    assert execution.inputs == {"who": "ada"}
    assert execution.trigger["type"] == "io.kestra.plugin.core.trigger.Webhook"
    assert execution.history.get().actor == "webhook:hook"


def test_get_and_put_work_too_with_query_parameters_and_text_bodies(hook):
    response = Client().get(URL + "?day=2024-01-01&tag=a&tag=b")
    assert response.status_code == 200
    variables = Execution.objects.get(pk=response.json()["id"]).trigger["variables"]
    assert variables["body"] is None
    assert variables["parameters"] == {"day": ["2024-01-01"], "tag": ["a", "b"]}
    response = Client().put(URL, data="plain words", content_type="text/plain")
    assert response.status_code == 200
    assert (
        Execution.objects.get(pk=response.json()["id"]).trigger["variables"]["body"]
        == "plain words"
    )
    assert Client().delete(URL).status_code == 405


def test_unknown_flows_and_wrong_keys_get_404_and_start_nothing(hook):
    client = Client()
    for url in (
        URL.replace("s3cr3t-key-0123456789", "wrong-key"),
        URL.replace("/hook/", "/nope/"),
        URL.replace("tests.hooks", "tests.other"),
    ):
        response = client.post(url, data="{}", content_type="application/json")
        assert response.status_code == 404
        assert response.json() == {
            "message": "no flow with a Webhook trigger for this key"
        }
    save_flow(FLOW + "disabled: true\n", actor="test")
    assert client.post(URL).status_code == 404
    assert Execution.objects.count() == 0


def test_conditions_that_say_no_answer_204(hook):
    response = Client().post(
        URL, data=json.dumps({"skip": True}), content_type="application/json"
    )
    assert response.status_code == 204
    assert Execution.objects.count() == 0


def test_a_bad_json_body_is_a_400_that_says_why(hook):
    response = Client().post(URL, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"].startswith("the body is not valid JSON")
    assert Execution.objects.count() == 0


def test_calls_beyond_the_flows_rate_get_429_with_retry_after(hook, settings):
    settings.ORCHESTRA_WEBHOOK_BURST = 3
    settings.ORCHESTRA_WEBHOOK_RATE = 0.1  # one call per 10 s once the burst is spent
    client = Client()
    codes = [client.post(URL).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = client.post(URL)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 10
    assert "too many webhook calls for tests.hooks.hook" in response.json()["message"]
    assert Execution.objects.count() == 3


def test_the_key_may_come_from_a_secret(db, monkeypatch):
    monkeypatch.setenv("SECRET_HOOK_KEY", base64.b64encode(b"from-the-env").decode())
    monkeypatch.setenv("ORCHESTRA_GLOBAL_SECRETS", "HOOK_KEY")
    save_flow(
        FLOW.replace("key: s3cr3t-key-0123456789", "key: \"{{ secret('HOOK_KEY') }}\""),
        actor="test",
    )
    assert Client().post(URL).status_code == 404
    assert (
        Client().post(URL.replace("s3cr3t-key-0123456789", "from-the-env")).status_code
        == 200
    )


def test_the_body_reaches_the_tasks(transactional_db):
    from executions.engine.inprocess import use_in_process
    from tests.conftest import wait_for

    save_flow(FLOW, actor="test")
    with use_in_process():
        response = Client().post(
            URL,
            data=json.dumps({"user": "grace"}),
            content_type="application/json",
            headers={"X-Source": "app"},
        )
        execution = wait_for(
            lambda: Execution.objects.filter(
                pk=response.json()["id"], state=State.SUCCESS
            ).first(),
            20,
            what="webhook run",
        )
    assert execution.taskruns.get().outputs == {"value": "grace via app"}
