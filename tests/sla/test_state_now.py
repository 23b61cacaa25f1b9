"""A miss seen while its execution ran, read after the execution ended: the
page, the CLI and the email show the state now beside the state when the
miss was seen ("#28 RUNNING, 2m 56s so far" after it ended SUCCESS was wrong)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Role
from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.models import Cause, State
from orchestra.cli import main
from sla import sweep
from tests.executions.test_stuck_browser import browser  # noqa: F401  (the fixture)
from tests.sla.flows import NIGHTLY


def _seen_running_then_ended(deploy, started, rule):
    rule(name="etl", namespace="company", sla="1h", recipients="oncall@example.com")
    execution = started(deploy(NIGHTLY))
    sweep.run(now=timezone.now() + timedelta(hours=2), send=False)
    machine.transition(execution, State.SUCCESS, actor=Actor(Cause.EXECUTOR, ""))
    return execution


@pytest.mark.django_db
def test_the_cli_and_the_email_say_the_state_now_and_when_seen(
    deploy, started, rule, smtp, capsys
):
    execution = _seen_running_then_ended(deploy, started, rule)
    assert main(["sla", "misses"]) == 0
    row = next(
        line for line in capsys.readouterr().out.splitlines() if "company.data" in line
    )
    assert re.search(r"\bRUNNING\s+SUCCESS\b", row), row  # STATE THEN, STATE NOW

    sweep.run(now=timezone.now() + timedelta(hours=2, minutes=1))
    message = smtp.messages[-1]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "RUNNING when detected" in text and "state now: SUCCESS" in text
    assert "still RUNNING" not in text
    assert f"#{execution.pk}</a> RUNNING when detected, now SUCCESS" in html


def test_the_misses_page_shows_the_state_now_beside_the_state_when_seen(
    live_server,
    browser,  # noqa: F811  (the fixture imported above)
    transactional_db,
    deploy,
    started,
    rule,
):
    execution = _seen_running_then_ended(deploy, started, rule)
    user = get_user_model().objects.create_user("vera", password="pw-vera-123")
    Role.objects.create(user=user, role="viewer", namespace="company")
    page = browser.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/sla/misses/")
    page.fill("input[name=username]", "vera")
    page.fill("input[name=password]", "pw-vera-123")
    page.click("button[type=submit]")
    page.wait_for_url("**/sla/misses/")
    row = page.locator("#rows tbody tr", has_text=f"#{execution.pk}")
    cells = row.locator("td").all_inner_texts()
    assert cells[2] == f"#{execution.pk} RUNNING now SUCCESS"
    page.close()
