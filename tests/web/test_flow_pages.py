"""Flow pages: topology, validation as you type, saving revisions, diffs and
the execute form generated from the flow's inputs."""

from __future__ import annotations

import pytest

from executions.models import Execution
from flows.models import Flow

from .conftest import FLOW, _user

pytestmark = pytest.mark.django_db


@pytest.fixture
def erin(db):
    return _user("erin", "editor", "company")


def test_detail_shows_topology_inputs_and_revisions(client, alice, deploy):
    deploy(
        FLOW.replace(
            "tasks:\n",
            "tasks:\n  - id: branch\n    type: If\n    condition: '{{ true }}'\n"
            "    then:\n      - id: inner\n        type: Log\n        message: hi\n",
        )
    )
    client.force_login(alice)
    page = client.get("/flows/company.data/etl/").content.decode()
    assert 'class="task-id">branch' in page and 'class="task-id">inner' in page
    assert 'branch-name">then' in page
    assert "/flows/company.data/etl/execute/" in page  # alice operates
    assert "/flows/company.data/etl/edit/" not in page  # but does not edit


def test_triggers_read_as_written(client, alice, deploy):
    deploy(
        FLOW
        + "triggers:\n  - id: nightly\n    type: Schedule\n"
        + "    cron: '@daily'\n    timezone: Europe/Paris\n    disabled: true\n"
    )
    client.force_login(alice)
    page = client.get("/flows/company.data/etl/").content.decode()
    assert "cron: &#x27;@daily&#x27;\ntimezone: Europe/Paris\ndisabled: true" in page
    assert "cron_normalized" not in page and "kind:" not in page


def test_validation_as_you_type_shows_line_and_column(client, erin):
    client.force_login(erin)
    bad = client.post(
        "/flows/validate/",
        {"source": FLOW.replace("type: Log", "type: Lgo")},
        headers={"HX-Request": "true"},
    )
    html = bad.content.decode()
    assert "<html" not in html
    assert (
        "line 12, column 5" in html
        and "tasks[0].type" in html
        and "did you mean" in html
    )
    ok = client.post("/flows/validate/", {"source": FLOW}).content.decode()
    assert "Valid: company.data.etl" in ok
    outside = client.post(
        "/flows/validate/", {"source": FLOW.replace("company.data", "other")}
    )
    assert (
        "you need the editor role on namespace &#x27;other&#x27;"
        in outside.content.decode()
    )


def test_saving_makes_a_new_revision_and_the_diff_shows_it(client, erin, deploy):
    deploy(FLOW)
    client.force_login(erin)
    bad = client.post(
        "/flows/company.data/etl/edit/",
        {"source": "id: etl\nnamespace: company.data\n"},
    )
    assert bad.status_code == 400 and b"at least one task" in bad.content
    saved = client.post(
        "/flows/company.data/etl/edit/", {"source": FLOW.replace("loaded", "done")}
    )
    assert saved.status_code == 302
    assert Flow.objects.get(flow_id="etl").revision == 2
    diff = client.get("/flows/company.data/etl/diff/?a=1&b=2").content.decode()
    assert '<span class="diff-del">-    format: &quot;loaded&quot;</span>' in diff
    assert '<span class="diff-add">+    format: &quot;done&quot;</span>' in diff
    renamed = client.post(
        "/flows/company.data/etl/edit/", {"source": FLOW.replace("id: etl", "id: x")}
    )
    assert renamed.status_code == 400 and b"use New flow" in renamed.content


def test_a_viewer_cannot_edit_and_an_outsider_cannot_see(client, bob, carol, deploy):
    deploy(FLOW)
    client.force_login(bob)
    assert client.get("/flows/company.data/etl/edit/").status_code == 403
    assert (
        client.post("/flows/company.data/etl/edit/", {"source": FLOW}).status_code
        == 403
    )
    client.force_login(carol)
    assert client.get("/flows/company.data/etl/").status_code == 404
    assert b"etl" not in client.get("/flows/").content


def test_the_execute_form_is_built_from_typed_inputs(client, alice, deploy):
    deploy(FLOW)
    client.force_login(alice)
    form = client.get("/flows/company.data/etl/execute/").content.decode()
    assert 'type="date" name="input_day"' in form
    assert 'type="number" name="input_size" value="3" step="1"' in form
    bad = client.post(
        "/flows/company.data/etl/execute/", {"input_size": "1.5", "labels": "nolabel"}
    )
    assert bad.status_code == 400
    assert Execution.objects.count() == 0
    ok = client.post(
        "/flows/company.data/etl/execute/",
        {"input_size": "9", "input_day": "2026-11-20", "labels": "env:prod"},
    )
    assert ok.status_code == 302
    execution = Execution.objects.get()
    assert execution.inputs == {"day": "2026-11-20", "size": 9}
    assert execution.labels == {
        "env": "prod",
        "system.correlationId": str(execution.pk),
    }
    assert ok["Location"] == f"/executions/{execution.pk}/"


def test_the_execute_form_uploads_files_and_refuses_viewers(client, alice, bob, deploy):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from executions.storage import read_uri

    deploy(FLOW.replace("tasks:\n", "  - id: data\n    type: FILE\ntasks:\n", 1))
    client.force_login(bob)
    assert client.get("/flows/company.data/etl/execute/").status_code == 403
    assert (
        client.post("/flows/company.data/etl/execute/", {"input_size": "1"}).status_code
        == 403
    )
    client.force_login(alice)
    form = client.get("/flows/company.data/etl/execute/").content.decode()
    assert (
        'type="file" name="input_data"' in form
        and 'enctype="multipart/form-data"' in form
    )
    missing = client.post("/flows/company.data/etl/execute/", {"input_size": "1"})
    assert (
        missing.status_code == 400
        and b"required FILE input is missing" in missing.content
    )
    upload = SimpleUploadedFile("orders.csv", b"id,total\n1,9.5\n")
    ok = client.post(
        "/flows/company.data/etl/execute/", {"input_size": "1", "input_data": upload}
    )
    assert ok.status_code == 302
    execution = Execution.objects.get()
    assert read_uri(execution.inputs["data"]) == b"id,total\n1,9.5\n"
    assert execution.inputs["data"].endswith("/orders.csv")
