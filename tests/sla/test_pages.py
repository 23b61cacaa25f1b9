"""SLA pages and REST endpoints, as alice (editor on company), bob (viewer on
company.data) and charlie (no role) see them."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import ApiToken, Role
from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.models import Cause, State
from sla import sweep
from sla.models import SlaMiss, SlaRule
from tests.sla.flows import NIGHTLY

pytestmark = pytest.mark.django_db


RULE = {
    "name": "etl",
    "namespace": "company.data",
    "slo": "45m",
    "sla": "1h",
    "tz": "UTC",
    "on_breach": "NONE",
    "enabled": "on",
    "recipients": "oncall@example.com",
}


def user(name, role=None, namespace=""):
    u = get_user_model().objects.create_user(name, password="pw-" + name)
    if role:
        Role.objects.create(user=u, role=role, namespace=namespace)
    return u


@pytest.fixture
def alice(client):
    return user("alice", "editor", "company")


@pytest.fixture
def bob():
    return user("bob", "viewer", "company.data")


@pytest.fixture
def charlie():
    return user("charlie")


def test_it_needs_login(client):
    assert client.get("/sla/")["Location"].startswith("/login/")
    assert client.get("/api/sla/rules").status_code in (401, 403)


def test_an_editor_creates_a_rule_and_sees_it_listed(client, alice):
    client.force_login(alice)
    response = client.post("/sla/rules/new/", RULE)
    assert response.status_code == 302 and response["Location"] == "/sla/"
    rule = SlaRule.objects.get()
    assert rule.sla == timedelta(hours=1)
    page = client.get("/sla/").content.decode()
    assert "etl" in page and "company.data.*" in page and "1h 00m" in page


def test_the_form_rejects_a_bad_duration_and_stores_nothing(client, alice):
    client.force_login(alice)
    response = client.post("/sla/rules/new/", {**RULE, "sla": "an hour"})
    assert response.status_code == 400
    assert "&#x27;an hour&#x27; is not a duration" in response.content.decode()
    assert not SlaRule.objects.exists()


def test_inline_validation_returns_the_fields_with_errors(client, alice):
    client.force_login(alice)
    response = client.post(
        "/sla/rules/validate/", {**RULE, "slo": "2h"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="rule-fields">')
    assert "the SLO (warning) must be shorter than the SLA (breach)" in html
    assert not SlaRule.objects.exists()


def test_a_viewer_cannot_create_edit_or_delete(client, bob):
    client.force_login(bob)
    response = client.post("/sla/rules/new/", RULE)
    assert response.status_code == 400
    assert "you need the editor role on namespace &#x27;company.data&#x27;" in (
        response.content.decode()
    )
    rule = SlaRule.objects.create(
        name="x", namespace="company.data", sla=timedelta(hours=1)
    )
    assert client.get(f"/sla/rules/{rule.pk}/edit/").status_code == 403
    assert (
        client.post(f"/sla/rules/{rule.pk}/delete/", {"confirm": "yes"}).status_code
        == 403
    )
    assert SlaRule.objects.filter(pk=rule.pk).exists()


def test_edit_and_delete_with_confirmation(client, alice):
    client.force_login(alice)
    rule = SlaRule.objects.create(name="x", namespace="company", sla=timedelta(hours=1))
    page = client.get(f"/sla/rules/{rule.pk}/edit/").content.decode()
    assert 'value="PT1H"' in page
    response = client.post(f"/sla/rules/{rule.pk}/edit/", {**RULE, "name": "renamed"})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.name == "renamed" and rule.slo == timedelta(minutes=45)
    confirm = client.get(f"/sla/rules/{rule.pk}/delete/").content.decode()
    assert "Delete SLA rule" in confirm
    client.post(f"/sla/rules/{rule.pk}/delete/")  # no confirm=yes: nothing happens
    assert SlaRule.objects.filter(pk=rule.pk).exists()
    client.post(f"/sla/rules/{rule.pk}/delete/", {"confirm": "yes"})
    assert not SlaRule.objects.filter(pk=rule.pk).exists()


def test_the_page_says_which_rule_applies_to_a_flow(client, alice):
    client.force_login(alice)
    SlaRule.objects.create(name="broad", namespace="company", sla=timedelta(hours=2))
    SlaRule.objects.create(
        name="narrow", namespace="company", flow_id="nightly", sla=timedelta(hours=1)
    )
    html = client.get(
        "/sla/?namespace=company.data&flow=nightly", headers={"HX-Request": "true"}
    ).content.decode()
    assert html.lstrip().startswith('<div id="applies">')
    assert "<strong>narrow</strong>" in html
    html = client.get("/sla/?namespace=company.data&flow=other").content.decode()
    assert "<strong>broad</strong>" in html


@pytest.fixture
def misses(deploy, started):
    SlaRule.objects.create(
        name="etl",
        namespace="company",
        sla=timedelta(hours=1),
        slo=timedelta(minutes=30),
        recipients="oncall@example.com",
    )
    SlaRule.objects.create(
        name="other",
        namespace="other",
        sla=timedelta(hours=1),
        recipients="oncall@example.com",
    )
    revision = deploy(NIGHTLY)
    other = deploy(NIGHTLY.replace("company.data", "other"))
    executions = [started(revision) for _ in range(3)] + [started(other)]
    sweep.run(now=timezone.now() + timedelta(minutes=45), send=False)
    return executions


def test_misses_are_listed_filtered_and_limited_to_visible_namespaces(
    client, bob, misses
):
    client.force_login(bob)
    html = client.get("/sla/misses/").content.decode()
    assert html.count('<span class="state level-SLO">') == 3  # not the one in "other"
    html = client.get(
        "/sla/misses/?level=SLA", headers={"HX-Request": "true"}
    ).content.decode()
    assert html.lstrip().startswith('<div id="rows">') and "No misses match." in html
    assert client.get("/sla/misses/?since=yesterday").status_code == 400


def test_the_digest_preview_shows_the_next_email(client, bob, misses):
    client.force_login(bob)
    html = client.get("/sla/digest/").content.decode()
    assert "To oncall@example.com — 3 misses" in html
    assert "[Orchestra] 3 SLO warnings in company.data" in html
    # The HTML email is shown escaped inside a sandboxed iframe, whole.
    assert 'sandbox srcdoc="&lt;!doctype html&gt;' in html and "&lt;/table&gt;" in html


def test_compliance_report(client, alice, deploy, started):
    client.force_login(alice)
    SlaRule.objects.create(name="etl", namespace="company", sla=timedelta(hours=1))
    revision = deploy(NIGHTLY)
    fast, slow = started(revision), started(revision)
    for execution, minutes in ((fast, 10), (slow, 90)):
        execution.started_at = timezone.now() - timedelta(minutes=minutes)
        machine.transition(
            execution,
            State.SUCCESS,
            fields={"started_at": execution.started_at},
            actor=Actor(Cause.EXECUTOR, ""),
        )
    from sla.models import Deadline

    # The slow one's deadline was due before it ended: recorded by the sweep.
    Deadline.objects.filter(execution=slow).update(
        due_at=slow.started_at + timedelta(hours=1), state="open"
    )
    sweep.run(send=False)
    html = client.get("/sla/compliance/").content.decode()
    assert "company.data" in html
    assert '50.0% <span class="hint">(1 of 2 missed)</span>' in html
    from sla.report import compliance

    [row] = compliance(timezone.now())
    week = row["periods"][0]
    assert week["days"] == 7 and week["sla"] == {
        "judged": 2,
        "missed": 1,
        "within": 50.0,
    }
    assert abs(week["p50"].total_seconds() - 50 * 60) < 5  # between 10 and 90 minutes
    assert abs(week["p95"].total_seconds() - 86 * 60) < 5


def test_rest_rules_crud_with_clear_errors(client, alice, bob):
    token = ApiToken.issue(alice, "ci")[1]
    auth = {"Authorization": f"Bearer {token}"}
    bad = client.post(
        "/api/sla/rules",
        {"name": "x", "namespace": "company", "sla": "soon"},
        content_type="application/json",
        headers=auth,
    )
    assert bad.status_code == 400
    assert bad.json()["errors"]["sla"][0].startswith("'soon' is not a duration")
    unknown = client.post(
        "/api/sla/rules",
        {"name": "x", "namespace": "company", "sla": "1h", "breach": "x"},
        content_type="application/json",
        headers=auth,
    )
    assert (
        unknown.status_code == 400
        and "unknown field(s) breach; allowed:" in unknown.json()["detail"]
    )
    created = client.post(
        "/api/sla/rules",
        {
            "name": "etl",
            "namespace": "company.data",
            "slo": "45m",
            "sla": "PT1H",
            "recipients": ["oncall@example.com"],
            "onBreach": "CANCEL",
            "addLabels": {"sla": "breached"},
        },
        content_type="application/json",
        headers=auth,
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["sla"] == "PT1H" and body["slo"] == "PT45M" and body["enabled"] is True
    assert body["addLabels"] == {"sla": "breached"} and body["recipients"] == [
        "oncall@example.com"
    ]
    rule_url = f"/api/sla/rules/{body['id']}"
    patched = client.patch(
        rule_url,
        {"sla": "2h", "enabled": False},
        content_type="application/json",
        headers=auth,
    )
    assert patched.status_code == 200
    assert patched.json()["sla"] == "PT2H" and patched.json()["enabled"] is False
    assert patched.json()["slo"] == "PT45M"  # untouched fields stay
    applying = client.get(
        "/api/sla/rules/applying?namespace=company.data&flow=x", headers=auth
    ).json()
    assert applying["rule"] is None  # disabled

    viewer = {"Authorization": f"Bearer {ApiToken.issue(bob, 'ro')[1]}"}
    assert client.get(rule_url, headers=viewer).status_code == 200
    denied = client.delete(rule_url, headers=viewer)
    assert denied.status_code == 403 and "editor role" in denied.json()["detail"]
    assert client.delete(rule_url, headers=auth).status_code == 204


def test_rest_misses_keyset_pages(client, bob, misses):
    client.force_login(bob)
    first = client.get("/api/sla/misses?limit=2").json()
    assert len(first["results"]) == 2 and first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None
    ids = [m["id"] for m in first["results"] + second["results"]]
    assert ids == sorted(ids, reverse=True)
    assert set(ids) == set(
        SlaMiss.objects.filter(namespace="company.data").values_list("pk", flat=True)
    )
    assert client.get("/api/sla/misses?level=BAD").status_code == 400
    assert client.get("/api/sla/misses?limit=0").status_code == 400


def test_someone_without_a_role_sees_no_rules_or_misses(client, charlie, misses):
    client.force_login(charlie)
    assert client.get("/api/sla/rules").json() == []
    assert client.get("/api/sla/misses").json()["results"] == []
    assert "No SLA rules yet" in client.get("/sla/").content.decode()


def test_which_rule_applies_is_not_told_outside_your_namespaces(client, bob):
    client.force_login(bob)
    SlaRule.objects.create(name="secret", namespace="finance", sla=timedelta(hours=1))
    html = client.get("/sla/?namespace=finance&flow=ledger").content.decode()
    assert "secret" not in html
    assert "You need the viewer role on namespace <code>finance</code>" in html


FLOW_WITH_SLA = """id: nightly
namespace: company.data
inputs:
  - id: SLO
    type: DURATION
    defaults: PT20M
sla:
  - id: hard-stop
    type: MAX_DURATION
    duration: PT2H
    behavior: FAIL
tasks:
  - id: hello
    type: Log
    message: hi
"""


def test_the_flow_page_shows_which_rule_applies_and_the_flows_own_thresholds(
    client, alice, deploy
):
    client.force_login(alice)
    deploy(FLOW_WITH_SLA)
    broad = SlaRule.objects.create(
        name="broad", namespace="company", sla=timedelta(hours=2)
    )
    narrow = SlaRule.objects.create(
        name="narrow",
        namespace="company.data",
        flow_id="nightly",
        sla=timedelta(hours=1),
    )
    SlaRule.objects.create(
        name="prod only",
        namespace="company.data",
        flow_id="nightly",
        labels={"env": "prod"},
        sla=timedelta(minutes=30),
    )
    SlaRule.objects.create(
        name="switched off",
        namespace="company",
        sla=timedelta(minutes=1),
        enabled=False,
    )

    page = client.get("/flows/company.data/nightly/").content.decode()
    assert 'hx-get="/sla/flows/company.data/nightly/"' in page

    html = client.get(
        "/sla/flows/company.data/nightly/", headers={"HX-Request": "true"}
    ).content.decode()
    rows = html.split("<tr")
    narrow_row = next(r for r in rows if ">narrow<" in r)
    assert f'href="/sla/#rule-{narrow.pk}"' in narrow_row
    assert "<strong>applies</strong>" in narrow_row and "1h 00m" in narrow_row
    assert "applies instead when labels match" in next(
        r for r in rows if ">prod only<" in r
    )
    assert "overridden" in next(r for r in rows if f"#rule-{broad.pk}" in r)
    assert "switched off" not in html
    # The flow's own thresholds: the SLO input's default and its sla: list.
    assert "<code>SLO</code> input default" in html and "20m 00s" in html
    assert "hard-stop" in html and "2h 00m" in html and "Fail" in html


def test_the_flow_sla_part_needs_a_role_on_the_namespace(client, bob):
    client.force_login(bob)
    # Another team's namespace answers like a missing one: nothing to learn.
    assert client.get("/sla/flows/finance/ledger/").status_code == 404
    assert client.get("/sla/flows/company.data/nightly/").status_code == 200


def test_another_teams_rule_is_a_404_like_a_missing_one(client, charlie):
    rule = SlaRule.objects.create(
        name="x", namespace="company.data", sla=timedelta(hours=1)
    )
    client.force_login(charlie)
    for url in ("/sla/rules/{}/edit/", "/sla/rules/{}/delete/"):
        other = client.get(url.format(rule.pk))
        missing = client.get(url.format(rule.pk + 1000))
        assert other.status_code == missing.status_code == 404
    assert (
        client.post(f"/sla/rules/{rule.pk}/delete/", {"confirm": "yes"}).status_code
        == 404
    )
    assert SlaRule.objects.filter(pk=rule.pk).exists()
    api_other = client.get(f"/api/sla/rules/{rule.pk}")
    api_missing = client.get(f"/api/sla/rules/{rule.pk + 1000}")
    assert api_other.status_code == api_missing.status_code == 404
    assert api_other.json() == {"detail": f"no rule {rule.pk}"}


def test_the_execution_page_shows_its_rule_deadlines_and_misses(
    client, bob, charlie, deploy, started
):
    rule = SlaRule.objects.create(
        name="etl", namespace="company", sla=timedelta(hours=1)
    )
    execution = started(deploy(NIGHTLY))
    sweep.run(now=timezone.now() + timedelta(hours=2), send=False)

    client.force_login(bob)
    page = client.get(f"/executions/{execution.pk}/").content.decode()
    assert f'hx-get="/sla/executions/{execution.pk}/"' in page
    html = client.get(
        f"/sla/executions/{execution.pk}/", headers={"HX-Request": "true"}
    ).content.decode()
    assert f'href="/sla/#rule-{rule.pk}">etl</a>' in html
    deadlines, misses = html.split("<h3>Deadlines</h3>")[1].split("<h3>Misses</h3>")
    assert "rule &#x27;etl&#x27;" in deadlines and "missed" in deadlines
    assert "1h 00m" in misses and "so far" in misses

    client.force_login(charlie)
    # Another team's execution answers like a missing one.
    assert client.get(f"/sla/executions/{execution.pk}/").status_code == 404
    assert client.get(f"/sla/executions/{execution.pk + 1000}/").status_code == 404


def test_an_execution_without_sla_says_so(client, bob, deploy, started):
    client.force_login(bob)
    execution = started(deploy(NIGHTLY))
    html = client.get(f"/sla/executions/{execution.pk}/").content.decode()
    assert "No SLA or SLO applies to this execution." in html
