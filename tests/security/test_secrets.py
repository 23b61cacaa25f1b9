"""Namespace secrets: scoped and inherited, encrypted at rest, never shown back,
and masked everywhere a value is stored or shown, transformed or not."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Role
from executions.models import Execution, LogEntry, StateChange, TaskRun
from flows.models import NamespaceChange, save_flow
from flows.secrets import resolve, set_secret
from orchestra.lib.secrets import SecretError
from tests import conftest

TOKEN = "Tr0ub4dor&3-horse-Battery"
ORCHESTRA = str(Path(sys.executable).parent / "orchestra")


def transformations(value: str) -> list[str]:
    raw = value.encode()
    return [
        value,
        value.upper(),
        value.lower(),
        value[::-1],
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        quote(value, safe=""),
        value[2:12],
        value[-9:],
    ]


def _set(namespace, name, value, actor="test"):
    return set_secret(namespace, name, value, actor=actor, via="cli", reason="test")


def test_the_nearest_namespace_wins_and_children_inherit(db):
    _set("team", "DB", "parent-value-1")
    _set("team.a", "DB", "child-value-22")
    assert resolve("team.a.etl", "DB") == "child-value-22"
    assert resolve("team.a", "DB") == "child-value-22"
    assert resolve("team.b", "DB") == "parent-value-1"
    with pytest.raises(SecretError) as info:
        resolve("other", "DB")
    assert "secret('DB') is not set for namespace other" in str(info.value)


def test_environment_secrets_are_global_only_when_marked(db, monkeypatch):
    monkeypatch.setenv("SECRET_SMTP", base64.b64encode(b"smtp-pass-9").decode())
    monkeypatch.delenv("ORCHESTRA_GLOBAL_SECRETS", raising=False)
    with pytest.raises(SecretError) as info:
        resolve("team.a", "SMTP")
    assert "marks SECRET_SMTP global (ORCHESTRA_GLOBAL_SECRETS)" in str(info.value)
    monkeypatch.setenv("ORCHESTRA_GLOBAL_SECRETS", "OTHER, SMTP")
    assert resolve("team.a", "SMTP") == "smtp-pass-9"
    _set("team.a", "SMTP", "team-a-smtp")  # a namespace's own secret comes first
    assert resolve("team.a", "SMTP") == "team-a-smtp"


def test_values_are_encrypted_at_rest(db):
    _set("team.a", "TOKEN", TOKEN)
    with connection.cursor() as cursor:
        cursor.execute("SELECT ciphertext FROM flows_namespacesecret")
        (stored,) = cursor.fetchone()
    stored = bytes(stored)
    assert stored.startswith(b"gAAAA")  # a Fernet token
    for form in transformations(TOKEN):
        assert form.encode() not in stored
    change = NamespaceChange.objects.get()
    assert (change.action, change.detail) == ("secret.create", {"name": "TOKEN"})
    assert TOKEN not in json.dumps(change.detail) + change.reason


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def personas(db):
    users = {}
    for name, role in (("ada", "admin"), ("eve", "editor"), ("vic", "viewer")):
        user = get_user_model().objects.create_user(name, password=f"pw-{name}-12345")
        Role.objects.create(user=user, namespace="team.a", role=role)
        users[name] = user
    users["out"] = get_user_model().objects.create_user("out", password="pw-out-12345")
    Role.objects.create(user=users["out"], namespace="team.b", role="admin")
    return users


def test_the_api_never_returns_a_value(personas):
    ada = _api(personas["ada"])
    url = "/api/namespaces/team.a/secrets/TOKEN"
    created = ada.put(url, {"value": TOKEN, "reason": "rotate"}, format="json")
    assert created.status_code == 201
    assert created.json()["name"] == "TOKEN" and created.json()["updated_by"] == "ada"
    replaced = ada.put(url, {"value": TOKEN + "-2"}, format="json")
    assert replaced.status_code == 200
    listed = _api(personas["eve"]).get("/api/namespaces/team.a.etl/secrets")
    assert listed.status_code == 200
    assert [(s["name"], s["namespace"], s["inherited"]) for s in listed.json()] == [
        ("TOKEN", "team.a", True)
    ]
    for response in (created, replaced, listed):
        for form in transformations(TOKEN):
            assert form not in response.content.decode()
    actions = list(
        NamespaceChange.objects.order_by("id").values_list("action", "actor", "via")
    )
    assert actions == [
        ("secret.create", "ada", "api"),
        ("secret.replace", "ada", "api"),
    ]
    # Who may do what: editors read names, only admins of the namespace write.
    assert (
        _api(personas["eve"]).put(url, {"value": "x" * 8}, format="json").status_code
        == 403
    )
    assert (
        _api(personas["vic"]).get("/api/namespaces/team.a/secrets").status_code == 403
    )
    assert _api(personas["out"]).delete(url).status_code == 403
    assert ada.delete(url + "?reason=leaked").status_code == 204
    assert ada.delete(url).status_code == 404
    assert NamespaceChange.objects.filter(
        action="secret.delete", reason="leaked"
    ).exists()


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("team.a/secrets/TOKEN", ["x"], "JSON object"),
        ("team.a/secrets/TOKEN", {"value": 12345678}, "must be text"),
        ("team.a/secrets/TOKEN", {"value": ""}, "cannot be empty"),
        ("team.a/secrets/TOKEN", {"value": "abc"}, "at least 4"),
        ("team.a/secrets/TOKEN", {"value": "a\x00bcdef"}, "NUL"),
        ("team.a/secrets/1BAD", {"value": "abcdefgh"}, "is not valid"),
        ("team.a/secrets/TOKEN", {"value": "abcdefgh", "reason": 5}, "1000"),
        ("team.a/secrets/TOKEN", {"value": "abc\ud800defg"}, "valid Unicode"),
        ("team.a/secrets/TOKEN", {"value": "abcdefgh", "reason": "\ud800"}, "1000"),
    ],
)
def test_bad_secret_input_is_a_400_and_stores_nothing(personas, path, body, message):
    response = _api(personas["ada"]).put(
        f"/api/namespaces/{path}",
        json.dumps(body),  # ASCII: lone surrogates travel as \\ud800 escapes
        content_type="application/json",
    )
    assert response.status_code == 400
    assert message in json.dumps(response.json())
    assert not NamespaceChange.objects.exists()


def _cli(*args, env=None, stdin=""):
    return subprocess.run(
        [ORCHESTRA, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_the_cli_reads_values_from_stdin_and_never_prints_them(transactional_db):
    env = {"DATABASE_URL": conftest.test_database_url()}
    done = _cli(
        "secrets", "set", "--namespace", "team.a", "TOKEN", env=env, stdin=TOKEN + "\n"
    )
    assert done.returncode == 0, done.stderr
    assert resolve("team.a", "TOKEN") == TOKEN  # the newline echo adds is dropped
    listed = _cli("secrets", "list", "--namespace", "team.a", "--json", env=env)
    shown = _cli("namespaces", "show", "team.a", env=env)
    for result in (done, listed, shown):
        assert result.returncode == 0, result.stderr
        for form in transformations(TOKEN):
            assert form not in result.stdout + result.stderr
    assert [r["name"] for r in json.loads(listed.stdout)] == ["TOKEN"]
    assert "secret.create" in shown.stdout and "via cli" in shown.stdout
    # Outside local mode there is no secret use without a key.
    keyless = _cli(
        "secrets",
        "set",
        "--namespace",
        "team.a",
        "OTHER",
        env={**env, "ORCHESTRA_SECRETS_KEY": ""},
        stdin="abcdefgh",
    )
    assert keyless.returncode == 2
    assert "namespace secrets need ORCHESTRA_SECRETS_KEY" in keyless.stderr


def test_local_mode_keeps_its_own_key_readable_by_its_owner_only(tmp_path):
    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "ORCHESTRA_SECRETS_KEY")
    }
    env["ORCHESTRA_HOME"] = str(home)
    for value in ("first-value", "second-value"):
        done = subprocess.run(
            [ORCHESTRA, "secrets", "set", "--namespace", "team.a", "K"],
            input=value,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert done.returncode == 0, done.stderr
    key = home / "secrets_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "replaced" in done.stdout


LEAKY = """
id: leaky
namespace: team.a.etl
tasks:
  - id: log
    type: Log
    message: >-
      plain={{ secret('TOKEN') }} up={{ secret('TOKEN') | upper }}
      low={{ secret('TOKEN') | lower }} b64={{ secret('TOKEN') | base64encode }}
      url={{ secret('TOKEN') | urlencode }} rev={{ secret('TOKEN') | reverse }}
      part={{ secret('TOKEN')[2:12] }}
  - id: label
    type: Labels
    labels:
      token: "{{ secret('TOKEN') }}"
  - id: each
    type: ForEach
    values: "{{ [secret('TOKEN'), 'plain-item'] }}"
    tasks:
      - id: echo
        type: Return
        format: "{{ taskrun.value }}"
  - id: child
    type: Subflow
    namespace: team.a.etl
    flowId: child
    inputs:
      pw: "{{ secret('TOKEN') }}"
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    env:
      TOKEN: "{{ secret('TOKEN') }}"
    commands:
      - printf '::{"outputs":{"%s":"%s"}}::\\n' "$TOKEN" "$TOKEN"
      - printf '%s' "$TOKEN" | base64
      - printf '%s\\n' "$TOKEN" | rev
      - printf '%s\\n' "$TOKEN" | tr a-z A-Z
      - printf '%s\\n' "$TOKEN" | cut -c3-14
  - id: fail
    type: Fail
    allowFailure: true
    errorMessage: "rejected {{ secret('TOKEN') | upper }}"
"""

CHILD = """
id: child
namespace: team.a.etl
inputs:
  - id: pw
    type: STRING
tasks:
  - id: r
    type: Return
    format: ok
"""


def _stored_text(execution_ids: list[int]) -> str:
    """Everything stored about these executions, as one text."""
    parts = [
        json.dumps(
            list(
                Execution.objects.filter(pk__in=execution_ids).values(
                    "inputs", "labels", "outputs", "error", "trigger"
                )
            ),
            default=str,
            ensure_ascii=False,
        ),
        json.dumps(
            list(
                TaskRun.objects.filter(execution_id__in=execution_ids).values(
                    "value", "outputs", "error"
                )
            ),
            default=str,
            ensure_ascii=False,
        ),
        "\n".join(
            LogEntry.objects.filter(execution_id__in=execution_ids).values_list(
                "message", flat=True
            )
        ),
        json.dumps(
            list(
                StateChange.objects.filter(execution_id__in=execution_ids).values(
                    "reason", "details"
                )
            ),
            default=str,
            ensure_ascii=False,
        ),
    ]
    return "\n".join(parts)


def test_every_leak_path_is_masked_with_its_transformations(db, run_inprocess):
    _set("team.a", "TOKEN", TOKEN)
    save_flow(CHILD, actor="test")
    _, revision, _ = save_flow(LEAKY, actor="test")
    execution = run_inprocess(revision, timeout=60)
    ids = [
        execution.pk,
        *Execution.objects.filter(parent=execution).values_list("pk", flat=True),
    ]
    assert len(ids) == 2
    stored = _stored_text(ids)
    for form in transformations(TOKEN):
        assert form not in stored, form
    # What was masked is still visible as masked, so the run is readable.
    logs = "\n".join(execution.logs.values_list("message", flat=True))
    assert (
        "plain=****** up=****** low=****** b64=****** url=****** rev=****** part=******"
        in logs
    )
    assert execution.labels["token"] == "******"
    assert set(
        execution.taskruns.filter(task_id="echo").values_list("value", flat=True)
    ) == {
        "******",
        "plain-item",
    }
    child = Execution.objects.get(parent=execution)
    assert child.inputs == {"pw": "******"}
    shell = execution.taskruns.get(task_id="shell")
    assert shell.outputs["vars"] == {"******": "******"}
    assert execution.taskruns.get(task_id="fail").error == "rejected ******"


def test_a_webhook_condition_error_shown_to_anyone_is_masked(db):
    _set("team.a", "HOOKPW", TOKEN)
    save_flow(
        """
id: hooked
namespace: team.a
tasks:
  - id: r
    type: Return
    format: ok
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: a-long-webhook-key-123
    conditions:
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{ secret('HOOKPW') | date }}"
""",
        actor="test",
    )
    response = Client().post(
        "/api/executions/webhook/team.a/hooked/a-long-webhook-key-123"
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert "is not an ISO-8601 date" in text and "******" in text
    for form in transformations(TOKEN):
        assert form not in text
