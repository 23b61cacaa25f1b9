"""Execution queries for tasks (Lookup, Count), reached through the RunContext.

One function builds the query; the tasks in flows/tasks/execution.py only
turn their properties into these arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Q

from executions.models import Execution
from flows.expressions import format_native
from flows.models import Flow
from orchestra.lib.durations import to_iso

ROW_FIELDS = (
    "id",
    "namespace",
    "flow_id",
    "revision",
    "state",
    "started_at",
    "ended_at",
    "created_at",
    "labels",
    "inputs",
    "trigger_id",
)


class QueryError(ValueError):
    """A filter that cannot be applied; the message says which and why."""


def executions_matching(
    *,
    namespace: str | None = None,
    flow_id: str | None = None,
    trigger_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    labels: dict[str, str] | None = None,
    states: list[str] | None = None,
    revision: int | str | None = None,
    inputs: dict[str, Any] | None = None,
    scope: Q | None = None,
):
    """``scope`` keeps only the namespaces the asking flow may reach."""
    qs = Execution.objects.all()
    if scope is not None:
        qs = qs.filter(scope)
    if namespace:
        qs = qs.in_namespace(namespace)
    if flow_id:
        qs = qs.filter(flow_id=flow_id)
    if trigger_id:
        qs = qs.filter(trigger_id=trigger_id)
    if created_after:
        qs = qs.filter(created_at__gte=created_after)
    if created_before:
        qs = qs.filter(created_at__lte=created_before)
    if states:
        qs = qs.filter(state__in=[str(s).upper() for s in states])
    if labels:
        qs = qs.with_labels({str(k): str(v) for k, v in labels.items()})
    if inputs:
        for key, value in inputs.items():
            qs = qs.filter(**{f"inputs__{key}": value})
    if revision not in (None, ""):
        if str(revision).lower() == "latest":
            if not namespace or not flow_id:
                raise QueryError("revision: latest needs both namespace and flowId")
            flow = Flow.objects.filter(
                namespace=namespace, flow_id=flow_id, deleted=False
            ).first()
            if flow is None:
                raise QueryError(
                    f"revision: latest: flow {namespace}.{flow_id} does not exist"
                )
            revision = flow.revision
        try:
            qs = qs.filter(revision=int(revision))
        except (TypeError, ValueError):
            raise QueryError(
                f"revision must be a number or 'latest', got {revision!r}"
            ) from None
    return qs


def _row(values: dict[str, Any], now: datetime, base_url: str) -> dict[str, Any]:
    started, ended = values["started_at"], values["ended_at"]
    duration = (ended or now) - started if started else None
    return {
        "id": values["id"],
        "namespace": values["namespace"],
        "flowId": values["flow_id"],
        "revision": values["revision"],
        "state": values["state"],
        "startDate": format_native(started) if started else None,
        "endDate": format_native(ended) if ended else None,
        "duration": to_iso(duration) if duration is not None else None,
        "labels": values["labels"] or {},
        "inputs": values["inputs"] or {},
        "triggerId": values["trigger_id"] or None,
        "url": f"{base_url}/executions/{values['id']}/",
    }


def iter_rows(limit: int | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
    """Matching executions, oldest first, as Lookup rows."""
    from django.utils import timezone

    now = timezone.now()
    base_url = settings.ORCHESTRA_BASE_URL.rstrip("/")
    qs = executions_matching(**filters).order_by("id").values(*ROW_FIELDS)
    if limit:
        qs = qs[:limit]
    for values in qs.iterator(chunk_size=2000):
        yield _row(values, now, base_url)


def lookup_rows(**filters: Any) -> list[dict[str, Any]]:
    return list(iter_rows(**filters))


def count_by_flow(
    *,
    flows: list[tuple[str, str]] | None = None,
    namespaces: list[str] | None = None,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Executions per flow. Flows named in ``flows`` and every live flow of
    ``namespaces`` appear even with no execution (count 0): "no run in the
    last day" is the question this usually answers."""
    wanted: set[tuple[str, str]] = set(flows or [])
    scope = Q()
    for ns, flow_id in wanted:
        scope |= Q(namespace=ns, flow_id=flow_id)
    reach = filters.get("scope")
    for ns in namespaces or []:
        scope |= Q(namespace=ns) | Q(namespace__startswith=ns + ".")
        flows_qs = Flow.objects.live().in_namespace(ns)
        if reach is not None:
            flows_qs = flows_qs.filter(reach)
        wanted |= set(flows_qs.values_list("namespace", "flow_id"))
    qs = executions_matching(**filters)
    if flows or namespaces:
        qs = qs.filter(scope)
    counts = {
        (row["namespace"], row["flow_id"]): row["n"]
        for row in qs.order_by().values("namespace", "flow_id").annotate(n=Count("id"))
    }
    keys = sorted(wanted | set(counts))
    return [
        {"namespace": ns, "flowId": f, "count": counts.get((ns, f), 0)}
        for ns, f in keys
    ]
