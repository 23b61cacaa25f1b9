"""A Python client generated from the live /api/schema/ (openapi-python-client,
at test time into tmp_path) lists, starts, follows and kills an execution
against a live server with a real Celery worker. Undocumented statuses raise
(``raise_on_unexpected_status``), and every answer is parsed into the
generated models, so a schema that drifted from the server fails here."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model

from accounts.models import ApiToken, Role
from tests.conftest import need

FLOW = """id: slow
namespace: company.gen
inputs:
  - id: who
    type: STRING
    defaults: nobody
tasks:
  - id: hello
    type: Log
    message: "hello {{ inputs.who }}"
  - id: work
    type: Sleep
    duration: PT5M
"""
PACKAGE = "orchestra_generated_client"


def _generator() -> str:
    found = Path(sys.executable).with_name("openapi-python-client")
    exe = str(found) if found.exists() else shutil.which("openapi-python-client")
    need(exe is not None, "needs openapi-python-client (pip install -e '.[test]')")
    return exe


@pytest.fixture
def generated(tmp_path, live_server, transactional_db, settings):
    settings.ORCHESTRA_SSE_SECONDS = 20
    settings.ORCHESTRA_SSE_POLL_SECONDS = 0.1
    user = get_user_model().objects.create_user("gen", password="pw-gen-12345")
    Role.objects.create(user=user, role="operator", namespace="company")
    _, key = ApiToken.issue(user, "generated client")
    schema = httpx.get(
        f"{live_server.url}/api/schema/?format=json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert schema.status_code == 200
    (tmp_path / "schema.json").write_text(schema.text)
    (tmp_path / "config.yml").write_text("post_hooks: []\n")
    done = subprocess.run(
        [
            _generator(),
            "generate",
            "--path",
            str(tmp_path / "schema.json"),
            "--meta",
            "none",
            "--config",
            str(tmp_path / "config.yml"),
            "--output-path",
            str(tmp_path / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE), key
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line
        )
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


def _sub(package, path: str):
    return importlib.import_module(f"{package.__name__}.{path}")


def test_a_generated_client_lists_starts_follows_and_kills(
    generated, live_server, deploy, start_worker
):
    package, key = generated
    deploy(FLOW)
    start_worker("gen")
    client = package.AuthenticatedClient(
        base_url=live_server.url, token=key, raise_on_unexpected_status=True
    )
    models = _sub(package, "models")
    api = "api.executions."

    started = _sub(package, api + "executions_create").sync(
        "company.gen",
        "slow",
        client=client,
        body=models.ExecuteInRequest(
            inputs=models.ExecuteInRequestInputs.from_dict({"who": "Ada"})
        ),
    )
    assert isinstance(started, models.ExecutionOut), started
    assert (started.namespace, started.flow_id, started.attempt) == (
        "company.gen",
        "slow",
        1,
    )
    assert started.inputs.to_dict() == {"who": "Ada"}

    page = _sub(package, api + "executions_search").sync(
        client=client, namespace="company.gen"
    )
    assert isinstance(page, models.ExecutionPageOut)
    assert [e.id for e in page.results] == [started.id]

    # Follow until the Sleep task runs: the log line and a RUNNING state.
    follow = _sub(package, api + "executions_follow_retrieve")
    get = _sub(package, api + "executions_get")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        detail = get.sync(started.id, client=client)
        assert isinstance(detail, models.ExecutionDetailOut)
        if any(t.task_id == "work" and t.state == "RUNNING" for t in detail.task_runs):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the Sleep task never ran: {detail.to_dict()}")
    assert detail.parent is None and detail.children_count == 0

    kill = _sub(package, api + "executions_kill_create").sync(
        started.id,
        client=client,
        body=models.ReasonInRequest(reason="generated client test"),
    )
    assert isinstance(kill, models.ExecutionDetailOut), kill
    assert kill.state in ("KILLING", "KILLED")

    # The stream replays the state and the logs, and ends once KILLED.
    stream = follow.sync(started.id, client=client)
    events = _events(stream)
    assert any(
        kind == "log" and data["message"] == "hello Ada" for kind, data in events
    )
    assert events[-1] == ("end", {"id": started.id, "state": "KILLED"})
    assert get.sync(started.id, client=client).state == "KILLED"

    # Errors parse into the documented error model too.
    missing = get.sync_detailed(started.id + 1000, client=client)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.Error)
    assert missing.parsed.detail == f"no execution {started.id + 1000}"
