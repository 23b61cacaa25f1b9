"""Downloading an execution's files (task outputs, FILE inputs) from its page
and from the API: the right bytes, name and type for those who may view the
namespace; 400/404, never a 500, for anything else."""

from __future__ import annotations

import pytest

from executions.models import State
from executions.storage import save_input_file

FLOW = """
id: files
namespace: company.data
inputs:
  - id: upload
    type: FILE
tasks:
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      given.txt: "{{ inputs.upload }}"
    outputFiles: [copy.csv]
    commands:
      - tr a-z A-Z < given.txt > copy.csv
"""


@pytest.fixture
def ran(deploy, run_inprocess):
    """Two finished executions of the flow, each with an upload and an output."""

    def run(text: bytes):
        uri = save_input_file("company.data", "files", "notes.txt", text)
        execution = run_inprocess(deploy(FLOW), inputs={"upload": uri})
        assert execution.state == State.SUCCESS
        copy = execution.taskruns.get(task_id="make").outputs["outputFiles"]
        return execution, uri, copy["copy.csv"]

    return run(b"hello, files\n"), run(b"second one\n")


def _content(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_viewer_downloads_task_outputs_and_inputs_from_the_page(client, bob, ran):
    (execution, upload, copy), _ = ran
    client.force_login(bob)
    page = client.get(f"/executions/{execution.pk}/").content.decode()
    # Outputs and inputs link to the download, with the file's size.
    link = f'href="/executions/{execution.pk}/file?path=kestra%3A%2F%2F%2F'
    assert page.count(link) >= 2
    assert f">{copy}</a>&quot;" not in page and f'>{copy}</a>"' in page
    assert '<span class="hint">(13\xa0bytes)</span>' in page
    answer = client.get(f"/executions/{execution.pk}/file", {"path": copy})
    assert answer.status_code == 200
    assert _content(answer) == b"HELLO, FILES\n"
    assert answer["Content-Disposition"] == 'attachment; filename="copy.csv"'
    assert answer["Content-Type"] == "text/csv"
    assert answer["Content-Length"] == "13"
    given = client.get(f"/executions/{execution.pk}/file", {"path": upload})
    assert _content(given) == b"hello, files\n"
    assert given["Content-Disposition"] == 'attachment; filename="notes.txt"'


def test_the_api_serves_the_same_files(client, bob, token_for, ran):
    (execution, _, copy), _ = ran
    headers = {**token_for(bob), "Accept": "application/octet-stream"}
    answer = client.get(
        f"/api/executions/{execution.pk}/file", {"path": copy}, headers=headers
    )
    assert answer.status_code == 200 and _content(answer) == b"HELLO, FILES\n"
    assert answer["Content-Disposition"] == 'attachment; filename="copy.csv"'
    missing = client.get(f"/api/executions/{execution.pk}/file", headers=token_for(bob))
    assert missing.status_code == 400
    assert missing.json()["detail"].startswith("invalid request: path: required")


def test_other_executions_files_and_traversal_are_refused(client, bob, token_for, ran):
    (first, first_upload, first_copy), (second, _, _) = ran
    folder = f"kestra:///company.data/files/executions/{second.pk}"
    cases = [
        (first_copy, 404),  # a file of another execution of the same flow
        (first_upload, 404),  # another execution's upload
        (f"{folder}/../{first.pk}/tasks/make/x/copy.csv", 400),
        ("kestra:///../../etc/passwd", 400),
        ("/etc/passwd", 400),
        ("file:///etc/passwd", 400),
        (f"{folder}/tasks/make/nope.csv", 404),  # its own folder, no such file
        (f"{folder}/tasks/\x00.csv", 400),
        (f"{folder}/" + "x" * 5000, 404),
    ]
    client.force_login(bob)
    for path, status in cases:
        page = client.get(f"/executions/{second.pk}/file", {"path": path})
        assert page.status_code == status, (path, page.status_code)
        api = client.get(
            f"/api/executions/{second.pk}/file", {"path": path}, headers=token_for(bob)
        )
        assert api.status_code == status, (path, api.status_code)
        assert "detail" in api.json()


def test_viewers_of_other_namespaces_get_nothing(
    client, bob, carol, token_for, make_execution, ran
):
    (execution, _, copy), _ = ran
    client.force_login(carol)
    assert (
        client.get(f"/executions/{execution.pk}/file", {"path": copy}).status_code
        == 404
    )
    api = client.get(
        f"/api/executions/{execution.pk}/file", {"path": copy}, headers=token_for(carol)
    )
    assert api.status_code == 404
    # A file of namespace 'other' handed to a company execution (as an input)
    # is not shown to bob, who cannot see 'other'.
    foreign = save_input_file("other", "secret", "plans.txt", b"top secret")
    handed = make_execution(inputs={"upload": foreign})
    client.force_login(bob)
    refused = client.get(f"/executions/{handed.pk}/file", {"path": foreign})
    assert refused.status_code == 404


OTHER = """
id: reader
namespace: other
inputs:
  - id: data
    type: FILE
tasks:
  - id: peek
    type: Return
    format: "{{ read(inputs.data) }}"
"""


def test_a_run_cannot_be_handed_another_teams_file_by_naming_its_uri(
    client, token_for, deploy, ran
):
    """An operator of ``other`` names a file of ``company.data``, which she
    cannot view: refused with 400 and nothing created; her own upload works."""
    from django.contrib.auth import get_user_model

    from accounts.models import Role
    from executions.models import Execution

    (_, upload, copy), _ = ran
    deploy(OTHER)
    dana = get_user_model().objects.create_user("dana", password="pw-dana-123")
    Role.objects.create(user=dana, role="operator", namespace="other")
    before = Execution.objects.count()
    for uri in (copy, upload):
        answer = client.post(
            "/api/executions/other/reader",
            {"inputs": {"data": uri}},
            content_type="application/json",
            headers=token_for(dana),
        )
        assert answer.status_code == 400, answer.content
        assert "is not a file this execution may use" in answer.json()["detail"]
    assert Execution.objects.count() == before
    own = save_input_file("other", "reader", "mine.txt", b"mine")
    answer = client.post(
        "/api/executions/other/reader",
        {"inputs": {"data": own}},
        content_type="application/json",
        headers=token_for(dana),
    )
    assert answer.status_code == 201


def test_a_trigger_gives_only_the_files_of_the_execution_that_triggered_it(ran):
    from executions.models import Execution
    from executions.storage import ExecutionFiles, StorageError
    from flows.namespaces import set_allowed_namespaces

    (source, _, copy), (other_run, _, other_copy) = ran
    # Another namespace hears of company.data's runs only when it is allowed.
    set_allowed_namespaces(
        source.namespace, ["other"], actor="test", via="cli", reason="tests"
    )

    def started_by(variables):
        return Execution.objects.create(
            namespace="other",
            flow_id="reader",
            trigger={"id": "t", "type": "x", "variables": variables},
        )

    webhook = ExecutionFiles(started_by({"body": {"f": copy}}))
    with pytest.raises(StorageError):
        webhook.read(copy)
    flow_trigger = ExecutionFiles(
        started_by(
            {
                "executionId": source.pk,
                "namespace": source.namespace,
                "flowId": source.flow_id,
                "outputs": {"f": copy, "g": other_copy},
            }
        )
    )
    assert flow_trigger.read(copy) == b"HELLO, FILES\n"
    with pytest.raises(StorageError):
        flow_trigger.read(other_copy)
