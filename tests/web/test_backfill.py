"""Backfilling a Schedule trigger from the REST API and from the flow page:
preview the dates (marking those that fired already), confirm, follow the
links to the executions; bad dates and unknown triggers answer 400 with a
sentence, and only operators may start anything."""

from __future__ import annotations

import json

import pytest

from executions.models import Execution, TriggerEvent

pytestmark = pytest.mark.django_db

FLOW = """id: nightly
namespace: company.data
inputs:
  - id: day
    type: STRING
tasks:
  - id: r
    type: Return
    format: "{{ inputs.day }}"
triggers:
  - id: at2
    type: Schedule
    cron: "0 2 * * *"
    timezone: Europe/Paris
    inputs:
      day: "{{ trigger.date | date('yyyy-MM-dd') }}"
  - id: hook
    type: Webhook
    key: abcdef-0123456789ab
"""

URL = "/api/flows/company.data/nightly/triggers/at2/backfill"


def _post(client, url, body, headers):
    return client.post(
        url, json.dumps(body), content_type="application/json", headers=headers
    )


def test_api_dry_run_lists_the_dates_then_a_run_starts_them_once(
    client, alice, token_for, deploy
):
    deploy(FLOW)
    headers = token_for(alice)
    body = {"start": "2024-01-01", "end": "2024-01-03T23:00"}
    preview = _post(client, URL, {**body, "dryRun": True}, headers)
    assert preview.status_code == 200, preview.content
    data = preview.json()
    # Naive dates are in the trigger's time zone.
    assert data["dates"] == [
        "2024-01-01T02:00:00+01:00",
        "2024-01-02T02:00:00+01:00",
        "2024-01-03T02:00:00+01:00",
    ]
    assert data["to_fire"] == data["dates"] and data["already_fired"] == []
    assert data["execution_ids"] == [] and data["dry_run"] is True
    assert data["message"] == "3 dates, 3 would start (dry run: nothing started)"
    assert Execution.objects.count() == 0

    run = _post(client, URL, {**body, "labels": {"why": "reload"}}, headers)
    assert run.status_code == 200, run.content
    ids = run.json()["execution_ids"]
    assert len(ids) == 3 and run.json()["message"] == (
        "3 started, 0 already fired, 0 failed"
    )
    first = Execution.objects.get(pk=ids[0])
    assert first.inputs == {"day": "2024-01-01"}
    assert first.labels["why"] == "reload" and first.labels["system.backfill"] == "true"
    assert first.history.get().actor == "alice"

    # A wider range again: the dates that fired are marked and left alone.
    wider = {"start": "2024-01-01", "end": "2024-01-04T23:00", "dry_run": True}
    again = _post(client, URL, wider, headers).json()
    assert again["already_fired"] == data["dates"]
    assert again["to_fire"] == ["2024-01-04T02:00:00+01:00"]
    more = _post(client, URL, {**wider, "dry_run": False}, headers).json()
    assert len(more["execution_ids"]) == 1
    assert TriggerEvent.objects.filter(flow_id="nightly").count() == 4


def test_api_bare_date_end_includes_that_day(client, alice, token_for, deploy):
    deploy(FLOW)
    body = {"start": "2024-01-30", "end": "2024-01-31", "dryRun": True}
    preview = _post(client, URL, body, token_for(alice))
    assert preview.status_code == 200, preview.content
    assert preview.json()["dates"] == [
        "2024-01-30T02:00:00+01:00",
        "2024-01-31T02:00:00+01:00",
    ]


@pytest.mark.parametrize(
    ("body", "url", "detail"),
    [
        (
            {"start": "yesterday", "end": "2024-01-02"},
            URL,
            "'yesterday' is not an ISO-8601 date",
        ),
        (
            {"start": "2024-01-05", "end": "2024-01-02"},
            URL,
            "backfill end 2024-01-02T00:00:00+01:00 is before its start",
        ),
        (
            {"start": "2024-01-01", "end": "2024-01-02"},
            URL.replace("at2", "nope"),
            "has no Schedule trigger 'nope' (its schedules: at2)",
        ),
        (
            {"start": "2024-01-01", "end": "2024-01-02"},
            URL.replace("at2", "hook"),
            "has no Schedule trigger 'hook' (its schedules: at2)",
        ),
        (
            {"start": "2000-01-01", "end": "2024-01-01"},
            URL,
            "the range holds more than 1000 dates of '0 2 * * *'",
        ),
        ({"end": "2024-01-02"}, URL, "start: This field is required."),
        (
            {"start": "2024-01-01", "end": "2024-01-02", "startDate": "x"},
            URL,
            "unknown field(s) startDate",
        ),
        (
            {"start": "2024-01-01", "end": "2024-01-02", "labels": "nolabel"},
            URL,
            "labels: label 'nolabel' must be key:value",
        ),
    ],
)
def test_api_bad_requests_answer_400_with_a_detail_and_start_nothing(
    client, alice, token_for, deploy, body, url, detail
):
    deploy(FLOW)
    answer = _post(client, url, body, token_for(alice))
    assert answer.status_code == 400, answer.content
    assert detail in answer.json()["detail"]
    assert Execution.objects.count() == 0 and TriggerEvent.objects.count() == 0


def test_api_refuses_viewers_and_hides_flows_from_outsiders(
    client, bob, carol, token_for, deploy
):
    deploy(FLOW)
    body = {"start": "2024-01-01", "end": "2024-01-02"}
    viewer = _post(client, URL, body, token_for(bob))
    assert viewer.status_code == 403
    assert "operator role on namespace 'company.data'" in viewer.json()["detail"]
    outsider = _post(client, URL, body, token_for(carol))
    assert outsider.status_code == 404
    assert Execution.objects.count() == 0


def test_the_backfill_endpoint_is_in_the_openapi_schema(client, alice):
    client.force_login(alice)
    schema = client.get("/api/schema/?format=json").json()
    op = schema["paths"][
        "/api/flows/{namespace}/{flow_id}/triggers/{trigger_id}/backfill"
    ]["post"]
    assert "Backfill" in op["summary"]
    assert "BackfillOut" in json.dumps(op["responses"]["200"])


def test_flow_page_previews_marks_fired_dates_then_confirms(client, alice, deploy):
    deploy(FLOW)
    client.force_login(alice)
    page = client.get("/flows/company.data/nightly/").content.decode()
    assert 'id="backfill-form"' in page and '<option value="at2">' in page
    assert '<option value="hook">' not in page
    url = "/flows/company.data/nightly/backfill/"
    form = {"trigger": "at2", "start": "2024-01-01", "end": "2024-01-02T23:00"}
    client.post(url, {**form, "end": "2024-01-01T23:00", "confirm": "yes"})
    assert Execution.objects.count() == 1

    # The flow page posts with htmx and gets the panel only.
    preview = client.post(url, form, headers={"HX-Request": "true"})
    html = preview.content.decode()
    assert preview.status_code == 200 and "<html" not in html
    assert "2 dates, 1 would start" in html
    assert "2024-01-01T02:00:00+01:00</td><td>already fired" in html
    assert "2024-01-02T02:00:00+01:00</td><td>will start" in html
    assert 'name="revision" value="1"' in html and Execution.objects.count() == 1

    done = client.post(url, {**form, "revision": "1", "confirm": "yes"})
    html = done.content.decode()
    assert done.status_code == 200 and "1 started, 1 already fired, 0 failed" in html
    new = Execution.objects.latest("pk")
    assert f'href="/executions/{new.pk}/">execution {new.pk}</a>' in html
    assert new.inputs == {"day": "2024-01-02"}


def test_flow_page_rechecks_a_preview_of_an_older_revision(client, alice, deploy):
    deploy(FLOW)
    deploy(FLOW.replace('"0 2 * * *"', '"0 3 * * *"'))
    client.force_login(alice)
    answer = client.post(
        "/flows/company.data/nightly/backfill/",
        {
            "trigger": "at2",
            "start": "2024-01-01",
            "end": "2024-01-01T23:00",
            "revision": "1",
            "confirm": "yes",
        },
    )
    html = answer.content.decode()
    assert "The flow changed since the preview (revision 1 → 2)" in html
    assert "2024-01-01T03:00:00+01:00</td><td>will start" in html
    assert Execution.objects.count() == 0


def test_flow_page_errors_are_shown_and_viewers_are_refused(client, alice, bob, deploy):
    deploy(FLOW)
    client.force_login(alice)
    url = "/flows/company.data/nightly/backfill/"
    bad = client.post(
        url,
        {"trigger": "at2", "start": "2024-01-05", "end": "2024-01-01"},
        headers={"HX-Request": "true"},
    )
    assert bad.status_code == 400
    assert "is before its start" in bad.content.decode()
    unknown = client.post(
        url, {"trigger": "hook", "start": "2024-01-01", "end": "2024-01-02"}
    )
    assert unknown.status_code == 400
    assert "Select a valid choice. hook is not one of the available choices." in (
        unknown.content.decode()
    )
    assert Execution.objects.count() == 0
    client.force_login(bob)
    assert (
        "backfill-form"
        not in client.get("/flows/company.data/nightly/").content.decode()
    )
    assert client.get(url).status_code == 403
    assert (
        client.post(
            url,
            {
                "trigger": "at2",
                "start": "2024-01-01",
                "end": "2024-01-02",
                "confirm": "yes",
            },
        ).status_code
        == 403
    )
    assert Execution.objects.count() == 0
