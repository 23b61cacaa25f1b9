"""The /stuck/ pages: how many executions are stuck, a preview of what a
cleanup would cancel, and its confirmation."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts import roles
from executions.lifecycle.actor import Actor
from executions.models import AutoCleanup, CleanupRun
from executions.stuck import cleanup
from executions.stuck.detect import stuck_count


# --- web ------------------------------------------------------------------
class CleanupForm(forms.Form):
    older_than_minutes = forms.IntegerField(
        min_value=1,
        max_value=cleanup.MAX_MINUTES,
        initial=5,
        label="Older than (minutes)",
        help_text="Minimum age, and minimum time without progress for a stall.",
    )
    namespace = forms.CharField(
        required=False, max_length=255, help_text="Children included."
    )
    flow = forms.CharField(required=False, max_length=255, label="Flow id")
    max = forms.IntegerField(
        required=False, min_value=1, max_value=cleanup.MAX_CAP, label="Cancel at most"
    )


def _get_run_for_user(request, run_id: int) -> CleanupRun:
    run = CleanupRun.objects.filter(pk=run_id).first()
    if run is None or not (request.user.is_superuser or run.user_id == request.user.pk):
        raise Http404("no such cleanup")
    return run


def _recent(user) -> dict:
    """The user's recent cleanups: confirmed ones (the audit) first, then
    previews that were never confirmed, which the page shows collapsed."""
    mine = CleanupRun.objects.filter(user=user)
    previewed = mine.filter(status=CleanupRun.Status.PREVIEWED)
    return {
        "runs": list(mine.exclude(status=CleanupRun.Status.PREVIEWED)[:10]),
        "previews": list(previewed[:10]),
        "previews_count": previewed.count(),
        "preview_hours": settings.ORCHESTRA_CLEANUP_PREVIEW_RETENTION_HOURS,
    }


@require_GET
def stuck_page(request):
    return render(
        request,
        "stuck/page.html",
        {
            "nav": "stuck",
            "form": CleanupForm(initial={"older_than_minutes": 5}),
            "count": stuck_count(request.user, cached=False),
            **_recent(request.user),
            "policies": AutoCleanup.objects.filter(roles.namespace_q(request.user)),
        },
    )


@require_GET
def stuck_count_now(request):
    """The number the stuck page shows, for the overview's tile (loaded after
    the page, so the overview stays fast and never shows an older count)."""
    return HttpResponse(str(stuck_count(request.user, cached=False)))


@require_POST
def preview_cleanup(request):
    form = CleanupForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "stuck/page.html",
            {
                "nav": "stuck",
                "form": form,
                "count": stuck_count(request.user),
                **_recent(request.user),
                "policies": AutoCleanup.objects.filter(roles.namespace_q(request.user)),
            },
            status=400,
        )
    data = form.cleaned_data
    run, _ = cleanup.preview(
        older_than_minutes=data["older_than_minutes"],
        namespace=data["namespace"].strip(),
        flow=data["flow"].strip(),
        max_count=data["max"],
        actor=Actor.from_request(request, "web"),
    )
    return redirect("stuck:run", run.pk)


def _rows(rows: list[dict]) -> list[dict]:
    """Stored rows with datetimes again, for the template's date filters."""
    return [
        {
            **row,
            "created": datetime.fromisoformat(row["created_at"]),
            "progress": datetime.fromisoformat(row["progress_at"]),
        }
        for row in rows
    ]


@require_GET
def cleanup_run(request, run_id: int):
    run = _get_run_for_user(request, run_id)
    by_id = {row["id"]: row for row in run.preview}
    cancelled = set(run.cancelled_ids)
    return render(
        request,
        "stuck/run.html",
        {
            "nav": "stuck",
            "run": run,
            "preview": _rows(run.preview),
            "cancelled": _rows([by_id[pk] for pk in run.cancelled_ids if pk in by_id]),
            "cancelled_ids": cancelled,
            "spared": _rows(run.spared),
            "not_permitted": _rows(run.not_permitted),
            "expired": run.status == CleanupRun.Status.PREVIEWED
            and run.created_at < timezone.now() - cleanup.PREVIEW_TTL,
        },
    )


@require_POST
def confirm_cleanup(request, run_id: int):
    run = _get_run_for_user(request, run_id)
    if request.POST.get("confirm") != "yes":
        return HttpResponseBadRequest("confirm=yes is required")
    try:
        run = cleanup.confirm(run, actor=Actor.from_request(request, "web"))
    except cleanup.CleanupError as exc:
        messages.error(request, str(exc))
        return redirect("stuck:run", run.pk)
    text = cleanup.message(
        len(run.cancelled_ids), run.older_than_minutes, dry_run=False
    )
    if run.skipped:
        text += f"; skipped {len(run.skipped)} that changed since the preview"
    messages.success(request, text)
    return redirect("stuck:run", run.pk)
