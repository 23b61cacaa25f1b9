from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from accounts import roles
from executions.filters import visible_executions
from sla.models import SlaMiss


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return ""


def _check_broker() -> str:
    from orchestra.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    return ""


def _authenticated(request) -> bool:
    """A signed-in session or a valid API token (never raises)."""
    try:
        if request.user.is_authenticated:
            return True
        from accounts.authentication import BearerTokenAuthentication

        return bool(BearerTokenAuthentication().authenticate(request))
    except Exception:  # noqa: BLE001 — no database, bad token: anonymous
        return False


@require_GET
def health(request):
    """For load balancers and operators: the database and the broker answer
    (503 when either does not), live workers, and the scheduler's last round.

    Anonymous callers see only UP/DOWN per part; signed-in users and API
    tokens also get the errors, the worker count and the beat's age.
    """
    from django.conf import settings
    from django.utils import timezone

    from executions.heartbeats import liveness_timeout
    from executions.models import ServiceBeat, Worker, WorkerState

    checks: dict[str, str] = {}
    details: dict[str, object] = {}
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        try:
            check()
            checks[name] = "UP"
        except Exception as exc:  # noqa: BLE001 — any failure is DOWN
            checks[name] = "DOWN"
            details[name] = f"{type(exc).__name__}: {exc}"
    if checks["database"] == "UP":
        now = timezone.now()
        alive = Worker.objects.filter(
            state=WorkerState.ALIVE, last_heartbeat_at__gte=now - liveness_timeout()
        ).count()
        checks["workers"] = "UP" if alive else "DOWN"
        details["workers"] = alive
        beat = ServiceBeat.objects.filter(name="scheduler").first()
        late = 3 * settings.ORCHESTRA_LIVENESS_SWEEP_SECONDS
        age = (now - beat.at).total_seconds() if beat else None
        checks["scheduler"] = "UP" if age is not None and age <= late else "DOWN"
        details["scheduler"] = {
            "lastBeat": beat.at.isoformat() if beat else None,
            "ageSeconds": round(age, 1) if age is not None else None,
        }
    down = checks["database"] == "DOWN" or checks["broker"] == "DOWN"
    body: dict[str, object] = {"status": "DOWN" if down else "UP", "checks": checks}
    if _authenticated(request):
        body["details"] = details
    response = JsonResponse(body, status=503 if down else 200)
    response["Cache-Control"] = "no-store"
    return response


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
