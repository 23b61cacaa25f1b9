"""The README's curl examples run as written against a live server: each
``curl`` line (with its continuation lines) is run by bash with $TOKEN set,
only the host swapped for the test server's and ``-sS -w`` added to read the
status. Execution ids start at 42 so that ``/api/executions/42/follow`` names
the execution the example before it started."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from accounts.models import ApiToken
from executions.models import Execution
from tests.conftest import ROOT, need

HOST = "http://127.0.0.1:8080"
WEBHOOK_FLOW = """id: my_flow
namespace: company.team
tasks:
  - id: show
    type: Log
    message: "{{ trigger.body.file }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: my-key-7f3a9c2e41b8
"""


def readme_curls() -> list[str]:
    commands, current = [], None
    for line in (ROOT / "README.md").read_text().splitlines():
        if current is not None:
            current += "\n" + line
        elif line.lstrip().startswith("curl "):
            current = line.strip()
        if current is not None and not current.endswith("\\"):
            commands.append(re.sub(r"\s+#.*$", "", current))
            current = None
    return commands


def _run(command: str, url: str, token: str) -> tuple[int, str]:
    done = subprocess.run(
        ["bash", "-c", command.replace(HOST, url) + " -sS -w '\\n%{http_code}'"],
        cwd=ROOT,
        env={"TOKEN": token, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def test_every_curl_example_of_the_readme_runs_as_written(
    live_server, transactional_db, deploy, settings
):
    need(shutil.which("curl") is not None, "needs curl (apt-get install curl)")
    settings.ORCHESTRA_SSE_SECONDS = 2
    settings.ORCHESTRA_SSE_POLL_SECONDS = 0.1
    commands = readme_curls()
    assert len(commands) >= 6, commands
    root = get_user_model().objects.create_superuser("ada", "", "pw-ada-12345")
    _, token = ApiToken.issue(root, "readme")
    deploy(WEBHOOK_FLOW)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('executions_execution', 'id'), 41)"
            )
    else:
        pytest.skip("the ids of the README need PostgreSQL's sequences")
    answers = {}
    for command in commands:
        status, body = _run(command, live_server.url, token)
        assert 200 <= status < 300, f"{command}\n-> {status} {body[:500]}"
        answers[command] = body
    by_path = {re.search(r"/api/[^ '\"]+", c).group(0): b for c, b in answers.items()}
    search = json.loads(
        by_path["/api/executions?namespace=company&state=FAILED&window=24h"]
    )
    assert search["results"] == []
    assert json.loads(by_path["/api/flows"])["id"] == "hello_world"
    started = json.loads(by_path["/api/executions/company.team/hello_world"])
    assert started["id"] == 42 and started["inputs"] == {"user": "Ada"}
    assert "event: state" in by_path["/api/executions/42/follow"]
    hook = json.loads(
        by_path["/api/executions/webhook/company.team/my_flow/my-key-7f3a9c2e41b8"]
    )
    assert Execution.objects.get(pk=hook["id"]).trigger["variables"]["body"] == {
        "file": "s3://bucket/x.csv"
    }
    cleanup = json.loads(by_path["/api/executions/cleanup"])
    assert cleanup["dry_run"] is True and "Would cancel" in cleanup["message"]
