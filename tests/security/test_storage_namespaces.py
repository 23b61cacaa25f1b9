"""Stored files belong to the namespace that made them: a role on
``team.a.b`` alone gives no access to the files of flow ``b`` in ``team.a``,
which used to share the folder ``team/a/b/`` with it. Files stored in that
old layout stay readable by their own execution."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from accounts import roles
from accounts.models import ApiToken, Role
from executions.models import Execution, State
from executions.storage import ExecutionFiles, legacy_execution_folder
from tests.tasks.helpers import flow

OWNER = flow(
    "  - id: make\n    type: io.kestra.plugin.scripts.shell.Commands\n"
    "    outputFiles: [secret.txt]\n    commands: ['echo team-a-only > secret.txt']\n",
    flow_id="b",
    namespace="team.a",
)
READER = flow(
    '  - id: show\n    type: Log\n    message: "{{ read(inputs.f) }}"\n',
    "inputs:\n  - id: f\n    type: STRING\n",
    flow_id="reader",
    namespace="team.a.b",
)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(name: str, role: str, namespace: str):
    user = get_user_model().objects.create_user(name, password=f"pw-{name}-123")
    Role.objects.create(user=user, role=role, namespace=namespace)
    roles.forget(user)
    _, key = ApiToken.issue(user, "tests")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def team_a_files(deploy, run_inprocess):
    """An execution of flow ``b`` in ``team.a``: one file in today's layout,
    one written where the old layout put it."""
    execution = run_inprocess(deploy(OWNER))
    assert execution.state == State.SUCCESS
    new = execution.taskruns.get(task_id="make").outputs["outputFiles"]["secret.txt"]
    folder = legacy_execution_folder("team.a", "b", execution.pk)
    saved = default_storage.save(
        f"{folder}tasks/make/1/old.txt", ContentFile(b"team-a-legacy\n")
    )
    return execution, new, f"kestra:///{saved}"


def test_files_of_namespace_and_flow_no_longer_share_a_folder(team_a_files, deploy):
    _, new, legacy = team_a_files
    assert new.startswith("kestra:///team.a/b/executions/")
    assert legacy.startswith("kestra:///team/a/b/executions/")


def test_a_role_on_the_child_namespace_alone_cannot_use_the_flows_files(
    client, deploy, team_a_files
):
    execution, new, legacy = team_a_files
    deploy(READER)
    headers = _user("dave", "editor", "team.a.b")
    for uri in (new, legacy):
        answer = client.post(
            "/api/executions/team.a.b/reader",
            {"inputs": {"f": uri}},
            content_type="application/json",
            headers=headers,
        )
        assert answer.status_code == 400, answer.content
        assert "is not a file this execution may use" in str(answer.json())
    assert not Execution.objects.filter(namespace="team.a.b").exists()
    # Nor does the page of the owner's execution hand them out to dave.
    page = client.get(
        f"/api/executions/{execution.pk}/file", {"path": new}, headers=headers
    )
    assert page.status_code in (403, 404)


def test_a_role_on_the_owning_namespace_may_hand_them_on(
    client, deploy, team_a_files, run_inprocess
):
    _, new, legacy = team_a_files
    deploy(READER)
    headers = _user("erin", "operator", "team.a")  # team.a covers team.a.b too
    answer = client.post(
        "/api/executions/team.a.b/reader",
        {"inputs": {"f": legacy}},
        content_type="application/json",
        headers=headers,
    )
    assert answer.status_code == 201, answer.content


def test_files_stored_in_the_old_layout_stay_readable_by_their_execution(
    client, team_a_files
):
    execution, new, legacy = team_a_files
    files = ExecutionFiles(execution)
    assert files.read(legacy) == b"team-a-legacy\n"
    assert files.read(new) == b"team-a-only\n"
    headers = _user("fay", "viewer", "team.a")
    answer = client.get(
        f"/api/executions/{execution.pk}/file",
        {"path": legacy},
        headers={**headers, "Accept": "application/octet-stream"},
    )
    assert answer.status_code == 200
    assert b"".join(answer.streaming_content) == b"team-a-legacy\n"
