"""Issue 11: every interface records who acted and through which door.

Each verb of the REST API, the CLI and the dashboard is called once, as a
person or a script would, and the execution-level history row it writes must
say ``api`` / ``cli`` / ``user`` with the user's name (the OS user for the
CLI). A deletion removes the history, so the ``orchestra.audit`` log line is
checked instead. An interface that passed the wrong Actor — before the
restructure the API recorded restart, replay and resume as ``user`` — fails
here.
"""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth import get_user_model

from accounts.models import ApiToken, Role
from executions.models import Execution, State, StateChange
from flows.models import save_flow
from orchestra.cli import main
from orchestra.lib.users import os_username
from tests.executions import stuck_helpers
from tests.executions.test_rules_table import FLOW, NS, make_execution

S = State
USER = "erin"
BACKFILL = {"start": "2024-01-01", "end": "2024-01-02T23:00"}

# verb → (state of the execution it acts on, or None when it makes its own;
#         the state its history row records, or None for a deletion).
CASES = {
    "kill": (S.RUNNING, S.KILLED),
    "restart": (S.FAILED, S.RESTARTED),
    "replay": (S.SUCCESS, S.CREATED),  # the row of the new execution
    "resume": (S.PAUSED, S.RUNNING),
    "delete": (S.SUCCESS, None),
    "execute": (None, S.CREATED),
    "bulk kill": (S.RUNNING, S.KILLED),
    "bulk restart": (S.FAILED, S.RESTARTED),
    "bulk delete": (S.SUCCESS, None),
    "cleanup": ("stuck", S.CANCELLED),
    "backfill": (None, S.CREATED),
}


@pytest.fixture
def erin(db):
    user = get_user_model().objects.create_user(USER)
    Role.objects.create(user=user, role="editor", namespace="team")
    return user


@pytest.fixture
def revision(db):
    return save_flow(FLOW, actor="test")[1]


def _target(verb: str, revision) -> int | None:
    state = CASES[verb][0]
    if state is None:
        return None
    if state == "stuck":
        # Running for 30 minutes without progress and no task picked up.
        return stuck_helpers.make_execution(ns=NS, flow="gate").pk
    return make_execution(revision, state).pk


def _json(client, url: str, body: dict, headers: dict):
    return client.post(
        url, json.dumps(body), content_type="application/json", headers=headers
    )


def call_api(verb: str, pk: int | None, client, headers: dict):
    one = f"/api/executions/{pk}"
    if verb == "delete":
        return client.delete(one, headers=headers)
    if verb in ("kill", "restart", "replay", "resume"):
        return _json(client, f"{one}/{verb}", {}, headers)
    if verb.startswith("bulk "):
        body = {"action": verb.split()[1], "ids": [pk]}
        return _json(client, "/api/executions/bulk", body, headers)
    if verb == "execute":
        return _json(client, f"/api/executions/{NS}/gate", {}, headers)
    if verb == "cleanup":
        body = {"older_than_minutes": 5}
        return _json(client, "/api/executions/cleanup", body, headers)
    if verb == "backfill":
        url = f"/api/flows/{NS}/gate/triggers/nightly/backfill"
        return _json(client, url, BACKFILL, headers)
    raise AssertionError(verb)


def call_web(verb: str, pk: int | None, client):
    if verb in ("kill", "restart", "replay", "resume"):
        return client.post(f"/executions/{pk}/{verb}/", {"from_task": ""})
    if verb == "delete" or verb.startswith("bulk "):
        # The page's Delete… opens the bulk confirmation; this is its "Yes".
        action = verb.split()[-1]
        body = {"action": action, "ids": [pk], "confirm": "yes"}
        return client.post("/executions/bulk/", body)
    if verb == "execute":
        return client.post(f"/flows/{NS}/gate/execute/", {"labels": ""})
    if verb == "cleanup":
        preview = client.post("/stuck/preview", {"older_than_minutes": 5})
        assert preview.status_code == 302, preview.content
        return client.post(preview.url + "confirm", {"confirm": "yes"})
    if verb == "backfill":
        body = {"trigger": "nightly", **BACKFILL, "confirm": "yes"}
        return client.post(f"/flows/{NS}/gate/backfill/", body)
    raise AssertionError(verb)


def call_cli(verb: str, pk: int | None) -> int:
    if verb in ("kill", "restart", "replay", "resume"):
        return main(["executions", verb, str(pk)])
    if verb == "execute":
        return main(["flows", "execute", "-n", NS, "-f", "gate"])
    if verb == "cleanup":
        return main(["cleanup", "--older-than-minutes", "5"])
    if verb == "backfill":
        return main(
            ["flows", "backfill", "-n", NS, "-f", "gate", "-t", "nightly"]
            + ["--start", BACKFILL["start"], "--end", BACKFILL["end"]]
        )
    raise AssertionError(verb)


def assert_recorded(verb, pk, before: int, caplog, cause: str, actor: str, via: str):
    """The history rows (or audit line) the call wrote name ``cause`` and ``actor``."""
    to_state = CASES[verb][1]
    if to_state is None:
        assert not Execution.objects.filter(pk=pk).exists()
        lines = [r.getMessage() for r in caplog.records if r.name == "orchestra.audit"]
        assert len(lines) == 1, lines
        assert f"execution {pk} " in lines[0]
        assert f" deleted by {actor} via {via}: " in lines[0]
        return
    rows = StateChange.objects.filter(
        pk__gt=before, taskrun=None, to_state=to_state
    ).values_list("execution_id", "cause", "actor")
    assert rows, f"{verb} wrote no {to_state} history row"
    assert {(cause_, actor_) for _, cause_, actor_ in rows} == {(cause, actor)}
    if to_state != S.CREATED:
        assert pk in {execution_id for execution_id, _, _ in rows}
    if verb == "backfill":
        assert len(rows) == 2  # one execution per date


def _last_history_id() -> int:
    return StateChange.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@pytest.mark.usefixtures("recorder")
@pytest.mark.parametrize("verb", list(CASES))
def test_a_rest_call_is_recorded_as_api_by_its_user(
    verb, erin, revision, client, caplog
):
    _, key = ApiToken.issue(erin, "tests")
    pk = _target(verb, revision)
    before = _last_history_id()
    with caplog.at_level(logging.INFO, logger="orchestra.audit"):
        answer = call_api(verb, pk, client, {"Authorization": f"Bearer {key}"})
    assert answer.status_code in (200, 201, 204), answer.content
    assert_recorded(verb, pk, before, caplog, "api", USER, "api")


WEB = list(CASES)


@pytest.mark.usefixtures("recorder")
@pytest.mark.parametrize("verb", WEB)
def test_a_dashboard_action_is_recorded_as_user_by_its_user(
    verb, erin, revision, client, caplog
):
    client.force_login(erin)
    pk = _target(verb, revision)
    before = _last_history_id()
    with caplog.at_level(logging.INFO, logger="orchestra.audit"):
        answer = call_web(verb, pk, client)
    assert answer.status_code in (200, 302), answer.content
    assert_recorded(verb, pk, before, caplog, "user", USER, "web")


# The CLI has no delete and no bulk verbs.
CLI = ["kill", "restart", "replay", "resume", "execute", "cleanup", "backfill"]


@pytest.mark.usefixtures("recorder")
@pytest.mark.parametrize("verb", CLI)
def test_a_command_is_recorded_as_cli_by_the_os_user(
    verb, revision, caplog, capsys, db
):
    pk = _target(verb, revision)
    before = _last_history_id()
    code = call_cli(verb, pk)
    assert code == 0, capsys.readouterr()
    assert_recorded(verb, pk, before, caplog, "cli", os_username(), "cli")
