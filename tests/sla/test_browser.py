"""The rule form in a real browser (Debian's chromium through Playwright):
inline validation while typing, then the rule is created and the flow page
shows that it applies."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model

from accounts.models import Role
from sla.models import SlaRule
from tests.executions.test_stuck_browser import browser  # noqa: F401  (the fixture)
from tests.sla.flows import NIGHTLY


def test_the_rule_form_says_what_is_wrong_while_typing_then_creates_the_rule(
    live_server,
    browser,  # noqa: F811  (the fixture imported above)
    transactional_db,
    deploy,
):
    user = get_user_model().objects.create_user("erin", password="pw-erin-123")
    Role.objects.create(user=user, role="editor", namespace="company")
    page = browser.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/sla/rules/new/")
    page.fill("input[name=username]", "erin")
    page.fill("input[name=password]", "pw-erin-123")
    page.click("button[type=submit]")
    page.wait_for_url("**/sla/rules/new/")

    page.fill("input[name=name]", "ETL within an hour")
    page.fill("input[name=namespace]", "company.data")
    page.fill("input[name=sla]", "1 hour")
    page.press("input[name=sla]", "Tab")  # change → the fields come back validated
    error = page.wait_for_selector("#sla-error")
    assert "'1 hour' is not a duration" in error.inner_text()
    assert not SlaRule.objects.exists()

    page.fill("input[name=sla]", "1h")
    page.fill("input[name=slo]", "45m")
    page.press("input[name=slo]", "Tab")
    page.wait_for_selector("#sla-error", state="detached")
    page.click("button.primary")
    page.wait_for_url("**/sla/")
    assert (
        "SLA rule 'ETL within an hour' created for company.data.*"
        in page.inner_text(".messages")
    )
    rule = SlaRule.objects.get()
    assert rule.sla == timedelta(hours=1) and rule.slo == timedelta(minutes=45)

    # The flow page loads which rule applies to it (htmx, from the SLA app).
    deploy(NIGHTLY)
    page.goto(f"{live_server.url}/flows/company.data/nightly/")
    applies = page.wait_for_selector("#flow-sla")
    assert "ETL within an hour" in applies.inner_text()
    assert "applies" in applies.inner_text()


def test_the_misses_page_shows_the_state_now_and_the_rules_page_answers_for_labels(
    live_server,
    browser,  # noqa: F811  (the fixture imported above)
    transactional_db,
    deploy,
    started,
):
    from django.utils import timezone

    from executions.lifecycle import machine
    from executions.lifecycle.actor import Actor
    from executions.models import Cause, State
    from sla import sweep

    user = get_user_model().objects.create_user("erin", password="pw-erin-123")
    Role.objects.create(user=user, role="viewer", namespace="company")
    SlaRule.objects.create(name="plain", namespace="company", sla=timedelta(hours=1))
    SlaRule.objects.create(
        name="prod only",
        namespace="company",
        labels={"env": "prod"},
        sla=timedelta(minutes=30),
    )
    execution = started(deploy(NIGHTLY))
    sweep.run(now=timezone.now() + timedelta(hours=2), send=False)
    machine.transition(execution, State.FAILED, actor=Actor(Cause.EXECUTOR, ""))

    page = browser.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/sla/misses/")
    page.fill("input[name=username]", "erin")
    page.fill("input[name=password]", "pw-erin-123")
    page.click("button[type=submit]")
    page.wait_for_url("**/sla/misses/")
    row = page.locator("tr", has_text=f"#{execution.pk}")
    assert "RUNNING now FAILED" in " ".join(row.inner_text().split())

    page.goto(f"{live_server.url}/sla/")
    page.fill("input[name=namespace]", "company.data")
    page.fill("input[name=flow]", "nightly")
    page.click("#applies >> xpath=preceding-sibling::form[1] >> button")
    page.wait_for_selector("#applies >> text=without labels")
    assert "follow plain" in " ".join(page.inner_text("#applies").split())
    page.fill("input[name=labels]", "env:prod")
    page.click("#applies >> xpath=preceding-sibling::form[1] >> button")
    page.wait_for_selector("#applies >> text=labelled env:prod")
    assert "follow prod only" in " ".join(page.inner_text("#applies").split())
