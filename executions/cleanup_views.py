"""Stuck executions on the web (/stuck/) and the REST endpoint
``POST /api/executions/cleanup``. Both call executions.cleanup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from accounts import roles
from executions import cleanup
from executions.models import AutoCleanup, Cause, CleanupRun
from executions.stuck import stuck_count


# --- web ------------------------------------------------------------------
class CleanupForm(forms.Form):
    older_than_minutes = forms.IntegerField(
        min_value=1,
        max_value=cleanup.MAX_MINUTES,
        initial=5,
        label="Older than (minutes)",
        help_text="Minimum age, and minimum time without progress for a stall.",
    )
    namespace = forms.CharField(required=False, help_text="Children included.")
    flow = forms.CharField(required=False, label="Flow id")
    max = forms.IntegerField(required=False, min_value=1, label="Cancel at most")


def _get_run_for_user(request, run_id: int) -> CleanupRun:
    run = CleanupRun.objects.filter(pk=run_id).first()
    if run is None or not (request.user.is_superuser or run.user_id == request.user.pk):
        raise Http404("no such cleanup")
    return run


@require_GET
def stuck_page(request):
    return render(
        request,
        "executions/stuck.html",
        {
            "nav": "stuck",
            "form": CleanupForm(initial={"older_than_minutes": 5}),
            "count": stuck_count(request.user, cached=False),
            "runs": CleanupRun.objects.filter(user=request.user)[:10],
            "policies": AutoCleanup.objects.filter(roles.namespace_q(request.user)),
        },
    )


@require_POST
def preview_cleanup(request):
    form = CleanupForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "executions/stuck.html",
            {
                "nav": "stuck",
                "form": form,
                "count": stuck_count(request.user),
                "runs": CleanupRun.objects.filter(user=request.user)[:10],
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
        user=request.user,
        actor=request.user.get_username(),
        cause=Cause.USER,
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
        "executions/stuck_run.html",
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
        run = cleanup.confirm(
            run, user=request.user, actor=request.user.get_username(), cause=Cause.USER
        )
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


# --- REST -----------------------------------------------------------------
FIELDS = {"older_than_minutes", "dry_run", "namespace", "flow", "max"}


def _int_field(data: dict, name: str, default: int | None) -> int | None:
    value = data.get(name, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    if value > cleanup.MAX_MINUTES and name == "older_than_minutes":
        raise ValueError(
            f"{name} must be at most {cleanup.MAX_MINUTES} (ten years), got {value}"
        )
    return value


def _parse(data: Any) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(
            "the body must be a JSON object such as "
            '{"older_than_minutes": 5, "dry_run": true}'
        )
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(FIELDS))}"
        )
    dry_run = data.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ValueError(f"dry_run must be true or false, got {dry_run!r}")
    text = {}
    for name in ("namespace", "flow"):
        value = data.get(name) or ""
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        text[name] = value.strip()
    return {
        "older_than_minutes": _int_field(data, "older_than_minutes", 5),
        "dry_run": dry_run,
        "max_count": _int_field(data, "max", None),
        **text,
    }


class CleanupRequest(serializers.Serializer):
    older_than_minutes = serializers.IntegerField(
        min_value=1, default=5, required=False
    )
    dry_run = serializers.BooleanField(default=False, required=False)
    namespace = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Only this namespace and its children.",
    )
    flow = serializers.CharField(required=False, allow_blank=True, help_text="Flow id.")
    max = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="Cancel at most this many, oldest first.",
    )


class CleanupResponse(serializers.Serializer):
    cancelled_count = serializers.IntegerField()
    execution_ids = serializers.ListField(child=serializers.IntegerField())
    message = serializers.CharField()
    dry_run = serializers.BooleanField()
    cleanup_id = serializers.IntegerField()
    reasons = serializers.DictField(child=serializers.CharField())
    stuck = serializers.ListField(child=serializers.DictField())
    skipped = serializers.ListField(child=serializers.DictField())
    beyond_cap = serializers.IntegerField()
    not_permitted = serializers.ListField(child=serializers.DictField())
    spared_count = serializers.IntegerField()
    spared = serializers.ListField(child=serializers.DictField())


@extend_schema(
    request=CleanupRequest,
    responses={200: CleanupResponse},
    tags=["executions"],
    summary="Cancel stuck executions (or list them with dry_run)",
)
@api_view(["POST"])
def cleanup_api(request):
    """Find stuck executions and cancel them (or only list them with dry_run).

    Body (all optional): ``{"older_than_minutes": 5, "dry_run": false,
    "namespace": "", "flow": "", "max": null}``. Answer: ``cancelled_count``,
    ``execution_ids``, ``message``, plus reasons, spared and skipped rows.
    Only executions in namespaces where the caller is operator are cancelled.
    """
    try:
        params = _parse(request.data if request.body else {})
    except ValueError as exc:
        return Response({"detail": str(exc)}, status=400)
    ns = params["namespace"]
    if (
        ns
        and not params["dry_run"]
        and not roles.has_role(request.user, ns, roles.OPERATOR)
    ):
        return Response(
            {"detail": f"you need the operator role on namespace {ns!r}"}, status=403
        )
    result = cleanup.run_cleanup(
        older_than_minutes=params["older_than_minutes"],
        dry_run=params["dry_run"],
        namespace=ns,
        flow=params["flow"],
        max_count=params["max_count"],
        user=request.user,
        actor=request.user.get_username(),
        cause=Cause.API,
    )
    return Response(result)
