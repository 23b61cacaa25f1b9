"""Cleanup previews that were never confirmed are purged after a day, in
batches, by a beat task; confirmed cleanups stay as the audit. The /stuck/
page lists confirmed cleanups first and the previews collapsed."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Role
from executions.lifecycle.actor import Actor
from executions.models import CleanupRun
from executions.stuck import cleanup
from executions.stuck.retention import purge_cleanup_previews
from orchestra.celery import app
from tests.executions.stuck_helpers import make_execution
from tests.executions.test_stuck_browser import browser  # noqa: F401 — fixture


def _run(age_hours: float, *, confirmed: bool = False, user=None, dry=True):
    run = CleanupRun.objects.create(
        created_at=timezone.now() - timedelta(hours=age_hours),
        dry_run=dry and not confirmed,
        user=user,
        older_than_minutes=7 if confirmed else 5,
        status=CleanupRun.Status.DONE if confirmed else CleanupRun.Status.PREVIEWED,
    )
    return run


def test_old_previews_go_in_batches_and_confirmed_and_recent_ones_stay(db):
    old = [_run(30 + n) for n in range(5)]
    confirmed = _run(500, confirmed=True)
    recent = _run(23)
    first = purge_cleanup_previews(batch=2, max_batches=2)
    assert (first.deleted, first.more) == (4, True)
    # Oldest first: the newest old preview is what is left.
    assert set(CleanupRun.objects.values_list("pk", flat=True)) == {
        old[0].pk,
        confirmed.pk,
        recent.pk,
    }
    second = purge_cleanup_previews(batch=2, max_batches=2)
    assert (second.deleted, second.more) == (1, False)
    assert set(CleanupRun.objects.values_list("pk", flat=True)) == {
        confirmed.pk,
        recent.pk,
    }


def test_real_dry_runs_are_purged_a_day_later_and_cancellations_are_kept(db):
    make_execution(ns="shop", flow="sync")
    actor = Actor.cli()
    dry = cleanup.run_cleanup(older_than_minutes=5, dry_run=True, actor=actor)
    real = cleanup.run_cleanup(older_than_minutes=5, dry_run=False, actor=actor)
    assert real["cancelled_count"] == 1
    later = timezone.now() + timedelta(hours=25)
    assert purge_cleanup_previews(now=later).deleted == 1
    assert not CleanupRun.objects.filter(pk=dry["cleanup_id"]).exists()
    assert (
        CleanupRun.objects.get(pk=real["cleanup_id"]).cancelled_ids
        == (real["execution_ids"])
    )


def test_zero_hours_keeps_everything(db, settings):
    settings.ORCHESTRA_CLEANUP_PREVIEW_RETENTION_HOURS = 0
    _run(400)
    assert purge_cleanup_previews().deleted == 0
    assert purge_cleanup_previews(hours=24).deleted == 1


def test_beat_runs_the_purge_every_hour(db):
    entry = settings.CELERY_BEAT_SCHEDULE["purge-cleanup-previews"]
    assert entry["schedule"] == 3600.0
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    _run(48)
    assert app.tasks[entry["task"]].apply().get() == {"deleted": 1, "more": False}


def test_the_page_shows_confirmed_cleanups_first_and_previews_collapsed(
    live_server,
    browser,  # noqa: F811
    transactional_db,
):
    user = get_user_model().objects.create_user("olga", password="pw-olga-123")
    Role.objects.create(user=user, role="operator", namespace="shop")
    previews = [_run(n, user=user) for n in (1, 2, 3)]
    confirmed = _run(5, confirmed=True, user=user)
    page = browser.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/stuck/")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "pw-olga-123")
    page.click("button[type=submit]")
    page.wait_for_url("**/stuck/")
    section = page.locator("#recent-cleanups")
    # The confirmed cleanup is the visible table; previews are folded away.
    rows = section.locator("#confirmed-cleanups tbody tr")
    assert rows.count() == 1
    assert rows.first.inner_text().startswith(str(confirmed.pk))
    assert "7 min" in rows.first.inner_text() and "done" in rows.first.inner_text()
    summary = section.locator("#cleanup-previews summary")
    assert summary.inner_text() == "3 previews not confirmed (deleted after 24 h)"
    preview_rows = section.locator("#cleanup-previews tbody tr")
    assert preview_rows.count() == 3
    assert not preview_rows.first.is_visible()
    summary.click()
    assert preview_rows.first.is_visible()
    shown = [r.split("\t")[0] for r in preview_rows.all_inner_texts()]
    assert shown == [str(p.pk) for p in sorted(previews, key=lambda p: -p.pk)]
    assert "dry run" in preview_rows.first.inner_text()
