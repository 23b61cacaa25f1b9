from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from accounts import roles
from executions.filters import visible_executions
from sla.models import SlaMiss


@require_GET
def health(request):
    """Liveness for load balancers: the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "UP"})
    except Exception as exc:  # noqa: BLE001
        return JsonResponse({"status": "DOWN", "error": str(exc)}, status=503)


OVERVIEW_WINDOWS = {
    "24h": ("Last 24 hours", "hour", 24),
    "7d": ("Last 7 days", "day", 7),
    "30d": ("Last 30 days", "day", 30),
}


@require_GET
def overview(request):
    """Counts by state, executions over time, recent failures, SLA and stuck links."""
    from datetime import timedelta

    from django.db.models import Count
    from django.db.models.functions import TruncDay, TruncHour
    from django.shortcuts import render
    from django.utils import timezone

    window = request.GET.get("window", "24h")
    if window not in OVERVIEW_WINDOWS:
        window = "24h"
    label, unit, n = OVERVIEW_WINDOWS[window]
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    now = timezone.now()
    first = now.replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        first = first.replace(hour=0)
    first -= step * (n - 1)
    qs = visible_executions(request.user).filter(created_at__gte=first)
    trunc = TruncHour if unit == "hour" else TruncDay
    # One pass over the window (an index-only scan of ex_created_state on
    # PostgreSQL) gives both the per-state totals and the chart.
    by_state: dict[str, int] = {}
    buckets: dict = {}
    for bucket, state, count in (
        qs.annotate(b=trunc("created_at"))
        .values_list("b", "state")
        .annotate(n=Count("*"))
        .order_by()
    ):
        by_state[state] = by_state.get(state, 0) + count
        slot = buckets.setdefault(bucket, {"total": 0, "failed": 0})
        slot["total"] += count
        if state in ("FAILED", "KILLED"):
            slot["failed"] += count
    peak = max([b["total"] for b in buckets.values()] or [1]) or 1
    bars = []
    for i in range(n):
        start = first + step * i
        slot = buckets.get(start, {"total": 0, "failed": 0})
        bars.append(
            {
                "start": start,
                **slot,
                "height": round(slot["total"] / peak * 100, 1),
                "failed_height": round(slot["failed"] / peak * 100, 1),
            }
        )
    context = {
        "nav": "overview",
        "window": window,
        "windows": OVERVIEW_WINDOWS,
        "label": label,
        "by_state": sorted(by_state.items(), key=lambda kv: -kv[1]),
        "total": sum(by_state.values()),
        "bars": bars,
        "peak": peak,
        "unit": unit,
        "failures": list(
            visible_executions(request.user)
            .filter(state="FAILED", created_at__gte=first)
            .order_by("-created_at", "-id")[:10]
        ),
    }
    context["sla_misses"] = SlaMiss.objects.filter(
        roles.namespace_q(request.user, field="execution__namespace"),
        execution__created_at__gte=first,
    ).count()
    return render(request, "home.html", context)
