"""One function decides which rule applies (engine, page, API), and misses
say what state their execution is in now next to the state when seen."""

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.models import Cause, State
from flows.spec import FlowInvalid, parse_flow
from sla import sweep
from sla.models import Deadline, SlaRule
from tests.sla.flows import NIGHTLY
from tests.sla.test_pages import user

pytestmark = pytest.mark.django_db


@pytest.fixture
def rules():
    plain = SlaRule.objects.create(
        name="plain", namespace="company", sla=timedelta(hours=2)
    )
    prod = SlaRule.objects.create(
        name="prod only",
        namespace="company",
        flow_id="nightly",
        labels={"env": "prod"},
        sla=timedelta(hours=1),
    )
    return plain, prod


def _applying(client, query: str):
    return client.get(f"/api/sla/rules/applying?{query}")


def test_the_api_honours_label_selectors_like_the_engine(
    client, rules, deploy, started
):
    plain, prod = rules
    client.force_login(user("bob", "viewer", "company"))
    unlabelled = _applying(client, "namespace=company.data&flow=nightly").json()
    assert unlabelled["rule"]["name"] == "plain"
    assert {c["rule"]["name"]: c["status"] for c in unlabelled["candidates"]} == {
        "prod only": "labels",
        "plain": "applies",
    }
    labelled = _applying(
        client, "namespace=company.data&flow=nightly&labels=env:prod"
    ).json()
    assert labelled["rule"]["name"] == "prod only"
    other = _applying(
        client, "namespace=company.data&flow=nightly&labels=env:uat"
    ).json()
    assert other["rule"]["name"] == "plain"
    assert other["candidates"][0]["status"] == "no match"
    bad = _applying(client, "namespace=company.data&flow=nightly&labels=novalue")
    assert bad.status_code == 400 and "labels" in bad.json()["detail"]

    # The engine stores the deadlines of the same rule for the same runs.
    revision = deploy(NIGHTLY)
    run = started(revision)
    prod_run = started(revision, labels={"env": "prod"})
    assert Deadline.objects.get(execution=run).rule == plain
    assert Deadline.objects.get(execution=prod_run).rule == prod


def test_the_rules_page_answers_for_the_labels_given(client, rules):
    client.force_login(user("bob", "viewer", "company"))
    html = client.get(
        "/sla/?namespace=company.data&flow=nightly", headers={"HX-Request": "true"}
    ).content.decode()
    assert "without labels follow <strong>plain</strong>" in html
    html = client.get(
        "/sla/?namespace=company.data&flow=nightly&labels=env:prod",
        headers={"HX-Request": "true"},
    ).content.decode()
    assert "labelled env:prod follow <strong>prod only</strong>" in html


def test_a_miss_shows_the_state_now_next_to_the_state_when_seen(
    client, deploy, started
):
    SlaRule.objects.create(name="etl", namespace="company", sla=timedelta(hours=1))
    execution = started(deploy(NIGHTLY))
    sweep.run(now=timezone.now() + timedelta(hours=2), send=False)
    machine.transition(execution, State.SUCCESS, actor=Actor(Cause.EXECUTOR, ""))
    client.force_login(user("bob", "viewer", "company"))
    (miss,) = client.get("/api/sla/misses").json()["results"]
    assert miss["executionState"] == "RUNNING" and miss["currentState"] == "SUCCESS"
    html = client.get("/sla/misses/").content.decode()
    assert 'now</span> <span class="state state-SUCCESS">SUCCESS</span>' in html


def test_two_slas_with_the_same_id_are_an_error():
    source = """id: f
namespace: company
sla:
  - id: limit
    type: MAX_DURATION
    duration: PT1H
  - id: limit
    type: EXECUTION_ASSERTION
    assert: "{{ true }}"
tasks:
  - id: l
    type: Log
    message: hi
"""
    with pytest.raises(FlowInvalid) as raised:
        parse_flow(source)
    (error,) = raised.value.errors
    assert error.path == "sla[1].id" and error.line == 7
    assert "duplicate SLA id 'limit'" in error.message
