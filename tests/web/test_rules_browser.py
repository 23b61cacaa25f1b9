"""Issue 11 in a real browser (Debian's chromium through Playwright): what an
operator sees of the restart rule. A WARNING execution offers Replay but no
Restart, and the bulk "Restart selected…" lists it as left alone with the
reason; a FAILED one offers Restart and the same preview lists it as "will be
restarted" — and confirming restarts exactly that one."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from accounts.models import Role
from executions.models import Execution, State
from flows.models import save_flow
from tests.executions.test_rules_table import FLOW, make_execution

from .test_browser import browser, log_in  # noqa: F401  (browser: a fixture)

REFUSAL = (
    "it is WARNING; only FAILED, KILLED or CANCELLED executions can be restarted "
    "(replay runs it again)"
)


def _actions(page) -> list[str]:
    return [b.strip() for b in page.locator(".exec-actions button").all_inner_texts()]


def test_restart_is_offered_for_failed_but_not_for_warning_executions(
    live_server,
    transactional_db,
    browser,  # noqa: F811  (the imported fixture)
    recorder,
):
    user = get_user_model().objects.create_user("olga", password="pw-olga-123")
    Role.objects.create(user=user, role="operator", namespace="team")
    revision = save_flow(FLOW, actor="test")[1]
    warning = make_execution(revision, State.WARNING)
    failed = make_execution(revision, State.FAILED)

    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/login/")
    log_in(page, "olga", "pw-olga-123")

    # The pages: Replay for both, Restart only for the failed one.
    page.goto(f"{live_server.url}/executions/{warning.pk}/")
    page.wait_for_selector("#exec-state:has-text('WARNING')")
    assert _actions(page) == ["Replay"]
    page.goto(f"{live_server.url}/executions/{failed.pk}/")
    page.wait_for_selector("#exec-state:has-text('FAILED')")
    assert _actions(page) == ["Restart", "Replay"]

    # Both selected in the list, "Restart selected…": the preview says which.
    page.goto(f"{live_server.url}/executions/?namespace=team.rules")
    page.check(f"input[name=ids][value='{warning.pk}']")
    page.check(f"input[name=ids][value='{failed.pk}']")
    page.get_by_role("button", name="Restart selected…").click()
    page.wait_for_selector("h1:has-text('Restart 1 execution?')")
    acting = page.locator("#acting tbody tr")
    assert acting.count() == 1
    assert acting.first.locator("td").first.inner_text() == str(failed.pk)
    assert "will be restarted" in page.inner_text("section.card")
    skipped = page.locator("#skipped tbody tr")
    assert skipped.count() == 1
    cells = skipped.first.locator("td").all_inner_texts()
    assert (cells[0], cells[3], cells[4]) == (str(warning.pk), "WARNING", REFUSAL)

    # Confirming restarts the one it said, and leaves the other alone.
    page.get_by_role("button", name="Yes, restart 1 execution").click()
    page.wait_for_selector("text=1 execution(s) restarted.")
    assert Execution.objects.get(pk=failed.pk).state == State.RESTARTED
    assert Execution.objects.get(pk=warning.pk).state == State.WARNING
    assert recorder.advanced == [failed.pk]
    page.close()
