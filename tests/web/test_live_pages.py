"""Issue 14 in a real browser (Debian's chromium through Playwright), with a
live server and a real Celery worker: the approval example is resumed through
its form (the required answer is asked for, an empty one refused, "yes" takes
the approve branch), and the execution page fills in outputs, task outputs and
history when the run ends while you watch — without a reload."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from accounts.models import Role
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import TERMINAL, Execution, State
from tests.conftest import ROOT, wait_for

from .test_browser import browser, log_in  # noqa: F401  (browser: a fixture)

APPROVAL = (ROOT / "examples" / "flows" / "approval.yml").read_text()

ENDS_SOON = """id: ends_soon
namespace: company.team
tasks:
  - id: nap
    type: Pause
    delay: PT2S
  - id: compute
    type: Return
    format: "forty-two"
outputs:
  - id: answer
    type: STRING
    value: "{{ outputs.compute.value }}"
"""


def _operator(page, live_server) -> None:
    user = get_user_model().objects.create_user("olga", password="pw-olga-123")
    Role.objects.create(user=user, role="operator", namespace="company")
    page.goto(f"{live_server.url}/login/")
    log_in(page, "olga", "pw-olga-123")


def _state(execution) -> str:
    return Execution.objects.get(pk=execution.pk).state


def test_resuming_the_approval_example_asks_refuses_empty_and_approves(
    live_server,
    browser,  # noqa: F811  (the imported fixture)
    celery_worker,
    deploy,
):
    execution = create_execution(deploy(APPROVAL), actor=Actor.system("test"))
    wait_for(lambda: _state(execution) == State.PAUSED, what="the pause")
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.set_default_timeout(15_000)
    _operator(page, live_server)

    page.goto(f"{live_server.url}/executions/{execution.pk}/")
    page.wait_for_selector("#exec-state:has-text('PAUSED')")
    page.get_by_role("link", name="Resume…").click()
    page.wait_for_url(f"**/executions/{execution.pk}/resume/")

    # Both onResume inputs, typed: approved is a required yes/no, reason text.
    approved = page.get_by_role("group", name="approved")
    assert "required" in approved.locator("legend abbr").get_attribute("title")
    assert approved.get_by_role("radio", name="Yes").is_visible()
    assert approved.get_by_role("radio", name="No").is_visible()
    reason = page.get_by_label("reason", exact=True)
    assert reason.get_attribute("type") == "text"
    assert reason.input_value() == "no reason given"  # its default, shown

    # Nothing chosen: refused, the reason is on the page, still PAUSED.
    page.get_by_role("button", name="Resume").click()
    error = page.wait_for_selector(".field.has-error .error")
    assert error.inner_text() == "required BOOLEAN input is missing"
    assert "Please correct the 1 field below." in page.inner_text("#form-errors")
    assert _state(execution) == State.PAUSED

    # Approved with a reason: the approve branch runs.
    page.get_by_role("group", name="approved").get_by_role("radio", name="Yes").check()
    page.get_by_label("reason", exact=True).fill("numbers checked")
    page.get_by_role("button", name="Resume").click()
    page.wait_for_url(f"**/executions/{execution.pk}/")
    page.wait_for_selector("#exec-state:has-text('SUCCESS')")
    page.wait_for_selector("#logs :text('Published (numbers checked)')")
    history = page.inner_text("#history")
    assert "task publish" in history and "task reject" not in history
    answers = page.inner_text("#task-outputs")
    assert "wait_for_approval" in answers
    page.close()


def test_the_execution_page_shows_outputs_and_history_when_the_run_ends(
    live_server,
    browser,  # noqa: F811
    celery_worker,
    deploy,
):
    execution = create_execution(deploy(ENDS_SOON), actor=Actor.system("test"))
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.set_default_timeout(20_000)
    _operator(page, live_server)
    page.goto(f"{live_server.url}/executions/{execution.pk}/")
    page.evaluate("window.notReloaded = true")
    assert "None yet." in page.inner_text("#results")
    assert execution.pk and _state(execution) not in TERMINAL

    page.wait_for_selector("#exec-state:has-text('SUCCESS')")
    page.wait_for_selector("#exec-outputs")
    assert '"answer": "forty-two"' in page.inner_text("#exec-outputs")
    page.locator("#task-outputs summary", has_text="compute").click()
    assert "forty-two" in page.inner_text("#task-outputs")
    history = page.inner_text("#history")
    assert "task compute" in history and "RUNNING → SUCCESS" in history
    assert "None yet" not in page.inner_text("#results")
    assert page.evaluate("window.notReloaded") is True
    page.close()
