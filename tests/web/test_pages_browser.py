"""Issue 14 in a real browser (Debian's chromium through Playwright): what a
person sees of the backfill form's errors and ranges, and of the smaller
page defects."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from accounts.models import Role
from executions.models import Execution

from .test_backfill import FLOW as NIGHTLY
from .test_browser import browser, log_in  # noqa: F401  (browser: a fixture)


def _page(browser, live_server, role="operator", width=1366):  # noqa: F811
    user = get_user_model().objects.create_user("olga", password="pw-olga-123")
    Role.objects.create(user=user, role=role, namespace="company")
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/login/")
    log_in(page, "olga", "pw-olga-123")
    return page


def test_backfill_errors_are_visible_and_a_bare_end_date_includes_that_day(
    live_server,
    browser,  # noqa: F811
    transactional_db,
    deploy,
):
    deploy(NIGHTLY)
    page = _page(browser, live_server)
    page.goto(f"{live_server.url}/flows/company.data/nightly/")
    form = page.locator("#backfill-form")
    form.get_by_label("Start").fill("2024-01-05")
    form.get_by_label("End").fill("2024-01-01")
    form.get_by_role("button", name="Preview").click()
    error = page.wait_for_selector("#backfill-error")
    assert "is before its start" in error.inner_text()
    assert error.is_visible()

    form.get_by_label("Start").fill("2024-01-30")
    form.get_by_label("End").fill("2024-01-31")
    form.get_by_role("button", name="Preview").click()
    page.wait_for_selector("#backfill-dates")
    assert page.locator("#backfill-error").count() == 0
    dates = page.locator("#backfill-dates td.mono").all_inner_texts()
    assert dates == ["2024-01-30T02:00:00+01:00", "2024-01-31T02:00:00+01:00"]
    assert Execution.objects.count() == 0
    page.close()


def test_the_overview_and_the_stuck_page_count_the_same_stuck_executions(
    live_server,
    browser,  # noqa: F811
    transactional_db,
):
    from tests.executions.stuck_helpers import make_execution

    page = _page(browser, live_server)
    page.goto(f"{live_server.url}/")
    page.wait_for_selector("#overview-stuck:text-is('0')")
    for _ in range(3):  # stalled for half an hour, nothing moving them
        make_execution(ns="company.data", flow="sync")
    page.goto(f"{live_server.url}/")
    page.wait_for_selector("#overview-stuck:text-is('3')")
    page.click("#overview-stuck")
    page.wait_for_url("**/stuck/")
    assert page.inner_text("#stuck-count") == "3"
    page.close()
