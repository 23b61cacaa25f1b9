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


def _labels_too_wide(page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )


def test_the_small_page_defects_as_a_person_sees_them(
    live_server,
    browser,  # noqa: F811
    transactional_db,
    deploy,
    make_execution,
    settings,
):
    from executions.models import State, TaskRun

    from .conftest import FLOW

    deploy(FLOW)
    # The login page names where this installation keeps the admin password.
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{live_server.url}/login/")
    hint = page.inner_text(".narrow .hint")
    assert f"{settings.ORCHESTRA_HOME}/admin-password" in hint or (
        "~/" in hint and "admin-password" in hint
    )
    assert "~/.orchestra/" not in hint or settings.ORCHESTRA_HOME.endswith(".orchestra")
    # A favicon, served from static/.
    icon = page.get_attribute("link[rel=icon]", "href")
    answer = page.request.get(f"{live_server.url}{icon}")
    assert answer.ok and "svg" in answer.headers["content-type"]
    page.close()

    page = _page(browser, live_server, role="operator")
    # 404 and 403 inside the app frame, with the reason.
    page.goto(f"{live_server.url}/executions/999999/")
    assert page.locator("nav.mainnav").is_visible()
    assert page.inner_text("#error-page h1") == "Not found"
    page.goto(f"{live_server.url}/flows/company.data/etl/edit/")
    assert page.locator("nav.mainnav").is_visible()
    assert page.inner_text("#error-page h1") == "Not allowed"
    assert "You need the editor role on namespace 'company.data'." in page.inner_text(
        "#error-page"
    )

    # A task retried twice is one Replay choice; no outputs is said, not blank.
    failed = make_execution(state="FAILED", error="task 'extract' failed: boom")
    for attempt in (1, 2):
        TaskRun.objects.create(
            execution=failed, task_id="extract", attempt=attempt, state=State.FAILED
        )
    page.goto(f"{live_server.url}/executions/{failed.pk}/")
    options = page.locator("select[name=from_task] option").all_inner_texts()
    assert options == ["from the start", "from extract"]
    assert page.locator("#task-outputs p.hint").inner_text() == "None."

    # At 800 px wide tables scroll inside their card; the page does not.
    make_execution(state="FAILED", labels={f"label{i}": "x" * 30 for i in range(6)})
    page.set_viewport_size({"width": 800, "height": 900})
    for url in ("/executions/?window=all", f"/executions/{failed.pk}/", "/audit/"):
        page.goto(f"{live_server.url}{url}")
        assert not _labels_too_wide(page), url

    # The bulk restart confirmation is not styled like kill.
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(f"{live_server.url}/executions/?window=all&state=FAILED")
    page.check(f"input[name=ids][value='{failed.pk}']")
    page.get_by_role("button", name="Restart selected…").click()
    confirm = page.locator("button[name=confirm]")
    assert "danger" not in confirm.get_attribute("class")
    assert "primary" in confirm.get_attribute("class")
    page.close()


def test_the_execute_form_labels_each_input_once_and_shows_every_error(
    live_server,
    browser,  # noqa: F811
    transactional_db,
    deploy,
):
    deploy(
        "id: typed\nnamespace: company.data\ninputs:\n"
        "  - id: size\n    type: INT\n"
        "  - id: day\n    type: DATE\n"
        "  - id: region\n    type: STRING\n    displayName: Region code\n"
        "tasks:\n  - id: a\n    type: Log\n    message: hi\n"
    )
    page = _page(browser, live_server)
    page.goto(f"{live_server.url}/flows/company.data/typed/execute/")
    # The label is the input once, the hint its type (the id only when the
    # label is a display name).
    assert page.inner_text("label[for=id_input_size]") == "size *"
    size = page.get_by_label("size")
    assert size.get_attribute("aria-required") == "true"
    hints = page.locator(".field .hint").all_inner_texts()
    assert "int" in hints and "region · string" in hints
    size.fill("1.5")
    page.get_by_role("button", name="Execute").click()
    errors = page.locator(".field.has-error .error").all_inner_texts()
    assert errors == [
        "expected an integer, got '1.5'",
        "required DATE input is missing",
        "required STRING input is missing",
    ]
    assert "Please correct the 3 fields below." in page.inner_text("#form-errors")
    page.close()
