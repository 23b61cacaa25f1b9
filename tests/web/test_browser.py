"""The dashboard in a real browser (Debian's chromium through Playwright):
log in, filter executions, read logs, kill, and edit a flow with inline errors.

Screenshots go to $ORCHESTRA_SCREENSHOTS when set (the README's come from
``ORCHESTRA_SCREENSHOTS=docs/screenshots``), else into the test's data folder.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from accounts.models import Role
from executions.models import Execution
from tests.conftest import ROOT, need

from .conftest import FLOW

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


@pytest.fixture
def browser():
    need(
        shutil.which(CHROMIUM) is not None or os.path.exists(CHROMIUM),
        f"needs Chromium at {CHROMIUM} (apt-get install chromium)",
    )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "needs Playwright for Python (pip install -e '.[test]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def log_in(page, username: str, password: str, then: str = r"/$") -> None:
    """Fill in the login form the page shows and wait for where it leads."""
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(then))


@pytest.fixture
def shots() -> Path:
    folder = os.environ.get("ORCHESTRA_SCREENSHOTS")
    path = (ROOT / folder) if folder else Path(settings.ORCHESTRA_HOME) / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def seeded(transactional_db, deploy, run_inprocess, make_execution):
    """A small, realistic installation: flows, a finished real run, and history."""
    user = get_user_model().objects.create_user("dana", password="pw-dana-123")
    Role.objects.create(user=user, role="editor", namespace="company")
    for path in sorted((ROOT / "examples" / "flows").glob("*.yml")):
        deploy(path.read_text())
    etl = deploy(FLOW)
    real = run_inprocess(etl, inputs={"size": 5}, labels={"env": "prod"})
    failed = make_execution(
        state="FAILED",
        age=timedelta(hours=20),
        labels={"env": "prod"},
        logs=["reading orders", 'ERROR relation "orders" does not exist'],
        error="task 'extract' failed: relation \"orders\" does not exist",
    )
    for hours in range(1, 24, 2):
        make_execution(
            state="SUCCESS",
            age=timedelta(hours=hours, minutes=7),
            labels={"env": "prod"},
        )
    running = make_execution(
        state="RUNNING",
        flow_id="long_job",
        age=timedelta(minutes=3),
        logs=["Working for 30 minute(s)"],
    )
    make_execution(
        namespace="company.team",
        flow_id="hello_world",
        state="FAILED",
        age=timedelta(hours=5),
    )
    return {"real": real, "failed": failed, "running": running}


def test_it_logs_in_filters_reads_logs_kills_and_validates_a_flow(
    live_server, browser, seeded, shots
):
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/executions/")
    assert "/login/" in page.url
    log_in(page, "dana", "pw-dana-123", then=r"/executions/$")

    page.goto(f"{live_server.url}/")
    page.wait_for_selector(".barchart")
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    # Filter by namespace and state: htmx swaps the rows and keeps the URL.
    page.goto(f"{live_server.url}/executions/")
    page.fill("input[name=namespace]", "company.data")
    page.check("input[name=state][value=FAILED]")
    page.wait_for_url(re.compile(r"state=FAILED"))
    # Locator waits, not wait_for_function: the page's CSP forbids eval.
    from playwright.sync_api import expect

    expect(page.locator("#rows tbody tr[data-id]")).to_have_count(1)
    ids = page.eval_on_selector_all(
        "#rows tbody tr[data-id]", "rows => rows.map(r => r.dataset.id)"
    )
    assert ids == [str(seeded["failed"].pk)]
    assert "namespace=company.data" in page.url
    page.uncheck("input[name=state][value=FAILED]")
    page.locator("#rows tbody tr[data-id]").nth(5).wait_for()
    page.screenshot(path=str(shots / "executions.png"), full_page=True)

    # Detail of the real run: Gantt bars and its log lines.
    page.click(f"a[href='/executions/{seeded['real'].pk}/']")
    page.wait_for_selector(".gantt-bar")
    assert "extracting 5" in page.inner_text("#logs")
    page.screenshot(path=str(shots / "execution.png"), full_page=True)

    # Kill a running execution from its page.
    page.goto(f"{live_server.url}/executions/{seeded['running'].pk}/")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Kill')")
    page.wait_for_selector("#exec-state:has-text('KILLED')")
    assert Execution.objects.get(pk=seeded["running"].pk).state == "KILLED"

    # Edit a flow: an unknown task type is reported inline with line and column.
    page.goto(f"{live_server.url}/flows/company.data/etl/edit/")
    page.wait_for_selector(".validation.ok")
    page.fill("#source", FLOW.replace("type: Return", "type: Retrun"))
    error = page.wait_for_selector(".flow-error")
    assert "line 15, column 5" in error.inner_text()
    assert "did you mean" in error.inner_text()
    page.screenshot(path=str(shots / "flow-editor.png"), full_page=True)
    page.close()
