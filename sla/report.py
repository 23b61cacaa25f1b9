"""Compliance per namespace: the share of executions within SLO and SLA, and
duration percentiles, over the last 7 and 30 days.

Shares come from the stored deadlines (closed ones only: a running
execution has not met or missed anything yet), so they count exactly the
executions a threshold applied to.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Q

from executions.models import TERMINAL, Execution
from sla.models import Deadline, DeadlineState, Level

PERIODS = (7, 30)


def _shares(since: datetime, scope: Q) -> dict[str, dict[str, tuple[int, int]]]:
    """namespace → level → (executions judged, executions that missed)."""
    rows = (
        Deadline.objects.filter(
            scope,
            execution__created_at__gte=since,
            state__in=[DeadlineState.MET, DeadlineState.MISSED],
        )
        .values("execution__namespace", "level")
        .annotate(
            judged=Count("execution_id", distinct=True),
            missed=Count(
                "execution_id", distinct=True, filter=Q(state=DeadlineState.MISSED)
            ),
        )
        .order_by()
    )
    out: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    for row in rows:
        out[row["execution__namespace"]][row["level"]] = (row["judged"], row["missed"])
    return out


def _percentiles(since: datetime, namespaces: list[str]) -> dict[str, tuple]:
    """namespace → (p50, p95) of finished executions' durations."""
    if not namespaces:
        return {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT namespace,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY ended_at - started_at),
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY ended_at - started_at)
                FROM executions_execution
                WHERE namespace = ANY(%s) AND created_at >= %s
                  AND started_at IS NOT NULL AND ended_at IS NOT NULL
                GROUP BY namespace
                """,
                [namespaces, since],
            )
            return {ns: (p50, p95) for ns, p50, p95 in cursor.fetchall()}
    # SQLite (local mode, small data): the same in Python.
    durations: dict[str, list[timedelta]] = defaultdict(list)
    rows = Execution.objects.filter(
        namespace__in=namespaces,
        created_at__gte=since,
        state__in=TERMINAL,
        started_at__isnull=False,
        ended_at__isnull=False,
    ).values_list("namespace", "started_at", "ended_at")
    for ns, started, ended in rows.iterator():
        durations[ns].append(ended - started)
    return {
        ns: (_percentile(v, 0.5), _percentile(v, 0.95)) for ns, v in durations.items()
    }


def _percentile(values: list[timedelta], q: float) -> timedelta:
    """Linear interpolation, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def compliance(now: datetime, scope: Q | None = None) -> list[dict]:
    """One row per namespace with thresholds in the last 30 days.

    ``scope`` restricts namespaces (a Q on ``execution__namespace``), e.g.
    the ones the user may see.
    """
    scope = scope or Q()
    periods = {days: now - timedelta(days=days) for days in PERIODS}
    shares = {days: _shares(since, scope) for days, since in periods.items()}
    namespaces = sorted(set().union(*(s.keys() for s in shares.values())))
    pct = {days: _percentiles(since, namespaces) for days, since in periods.items()}
    report = []
    for ns in namespaces:
        row = {"namespace": ns, "periods": []}
        for days in PERIODS:
            entry = {"days": days}
            for level in (Level.SLO, Level.SLA):
                judged, missed = shares[days].get(ns, {}).get(level, (0, 0))
                entry[level.lower()] = {
                    "judged": judged,
                    "missed": missed,
                    "within": round(100 * (judged - missed) / judged, 1)
                    if judged
                    else None,
                }
            entry["p50"], entry["p95"] = pct[days].get(ns, (None, None))
            row["periods"].append(entry)
        report.append(row)
    return report
