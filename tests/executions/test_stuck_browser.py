"""The stuck page in a real browser (Debian's chromium through Playwright):
threshold → preview → an execution moves meanwhile → confirm → result."""

from __future__ import annotations

import os
import shutil

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Role
from executions.models import Execution, State, StateChange
from tests.conftest import need
from tests.executions.stuck_helpers import (
    Heartbeat,
    make_execution,
    make_taskrun,
    make_worker,
)

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser():
    need(
        shutil.which(CHROMIUM) is not None or os.path.exists(CHROMIUM),
        f"needs Chromium at {CHROMIUM} (apt-get install chromium)",
    )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "needs Playwright for Python (pip install playwright)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


def test_it_previews_then_cancels_exactly_the_previewed_executions(
    live_server, browser, transactional_db
):
    user = get_user_model().objects.create_user("olga", password="pw-olga-123")
    Role.objects.create(user=user, role="operator", namespace="shop")
    stalled = make_execution(ns="shop.orders", flow="sync")
    moves = make_execution(ns="shop.orders", flow="sync")
    dead = make_worker(alive=False)
    orphan = make_execution(ns="shop", flow="import")
    make_taskrun(orphan, worker=dead)
    healthy = make_execution(ns="shop", flow="nightly", age=600, progress=600)
    live = make_worker()
    make_taskrun(healthy, worker=live, task_id="crunch")
    with Heartbeat(live):
        _preview_and_confirm(
            live_server, browser, stalled, moves, orphan, healthy, dead
        )


def _preview_and_confirm(live_server, browser, stalled, moves, orphan, healthy, dead):
    page = browser.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/stuck/")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "pw-olga-123")
    page.click("button[type=submit]")
    page.wait_for_url("**/stuck/")
    assert page.inner_text("#stuck-count") == "3"

    page.fill("input[name=older_than_minutes]", "5")
    page.fill("input[name=namespace]", "shop")
    page.click("text=Preview")
    page.wait_for_selector("#stuck-rows")
    rows = page.locator("#stuck-rows tbody tr")
    assert rows.count() == 3
    orphan_row = page.inner_text(f"#stuck-rows tr[data-id='{orphan.pk}']")
    assert "orphaned" in orphan_row and dead.name in orphan_row
    spared = page.inner_text("#spared-rows")
    assert "running on live worker" in spared and "shop.nightly" in spared

    # Someone resumes work on one of them between preview and confirm.
    Execution.objects.filter(pk=moves.pk).update(state=State.PAUSED)
    page.click("#confirm")
    page.wait_for_selector("#result")
    assert "Cancelled 2" in page.inner_text("#result")
    assert "moved from RUNNING to PAUSED" in page.inner_text("#skipped-rows")
    cancelled = set(
        page.locator("#cancelled-rows tbody tr").evaluate_all(
            "rows => rows.map(r => Number(r.dataset.id))"
        )
    )
    assert cancelled == {stalled.pk, orphan.pk}
    assert Execution.objects.get(pk=moves.pk).state == State.PAUSED
    assert Execution.objects.get(pk=healthy.pk).state == State.RUNNING
    for pk in cancelled:
        change = StateChange.objects.get(
            execution_id=pk, taskrun=None, to_state="CANCELLED"
        )
        assert (change.cause, change.actor) == ("user", "olga")
