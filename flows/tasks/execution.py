"""Tasks that look at other executions: Lookup (alias Query) and Count.

They query through the RunContext (``query_executions``,
``count_executions``), so this module never imports the engine. Lookup
writes one JSON object per line to a ``.ion`` file (each line is valid Ion
text), which scripts and ForEachItem read; Count answers "how many runs
per flow", including flows with none.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, field_validator

from flows.expressions import evaluate, truthy
from flows.tasks.context import RunContext, TaskFailed
from flows.tasks.fields import BaseTask, DDict, DDuration, DList, DStr, Strict
from flows.tasks.registry import register
from orchestra.lib.dates import parse_datetime
from orchestra.lib.labels import LabelError, label_map

# Kestra's execution states (the engine's State names).
STATES = (
    "CREATED",
    "QUEUED",
    "RUNNING",
    "PAUSED",
    "RETRYING",
    "RESTARTED",
    "KILLING",
    "SUCCESS",
    "WARNING",
    "FAILED",
    "KILLED",
    "CANCELLED",
)


def _states(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value  # an expression, checked again once rendered
    if not isinstance(value, list):
        raise ValueError("expected a list of states")
    out = []
    for item in value:
        state = str(item).upper()
        if state not in STATES and "{{" not in str(item):
            raise ValueError(f"unknown state {item!r}; use one of {', '.join(STATES)}")
        out.append(state)
    return out


def _labels(value: Any) -> dict[str, str] | None:
    try:
        return label_map(value) or None
    except LabelError as exc:
        raise TaskFailed(str(exc)) from None


def _datetime(value: Any, what: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        raise TaskFailed(
            f"{what}: {value!r} is not a date-time; use ISO-8601 such as "
            "2026-03-01T09:00:00Z or an expression like {{ execution.startDate }}"
        ) from None


def _query(ctx: RunContext, method: str, **filters: Any) -> Any:
    try:
        return getattr(ctx, method)(**filters)
    except ValueError as exc:  # a filter the query cannot apply
        raise TaskFailed(str(exc)) from None


# --- Lookup ----------------------------------------------------------------------
class LookupTask(BaseTask):
    namespace: DStr | None = None
    flowId: DStr | None = None
    triggerId: DStr | None = None
    last: DDuration | None = None
    since: DStr | None = None
    labels: DDict | list[dict[str, Any]] | None = None
    states: Any = None
    revision: Any = None
    inputs: DDict | None = None

    @field_validator("states", mode="before")
    @classmethod
    def _check_states(cls, value: Any) -> Any:
        return _states(value)


def run_lookup(ctx: RunContext, props: LookupTask) -> dict:
    # `last` looks back from `since`, which defaults to this execution's start.
    since = (
        _datetime(props.since, "since")
        or _datetime(
            ctx.variables.get("execution", {}).get("startDate"), "execution.startDate"
        )
        or datetime.now(UTC)
    )
    last: timedelta | None = props.last
    rows = _query(
        ctx,
        "query_executions",
        namespace=props.namespace or None,
        flow_id=props.flowId or None,
        trigger_id=props.triggerId or None,
        created_after=since - last if last else None,
        created_before=since,
        labels=_labels(props.labels),
        states=_states(props.states),
        revision=props.revision,
        inputs=props.inputs or None,
    )
    body = "".join(
        json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows
    )
    uri = ctx.put_file("executions.ion", body.encode())
    ctx.log("INFO", f"found {len(rows)} execution(s)")
    return {"uri": uri, "size": len(rows)}


register(
    "io.kestra.plugin.core.execution.Lookup",
    LookupTask,
    run=run_lookup,
    aliases=("io.kestra.core.tasks.executions.Query",),
    summary="Find executions (namespace, flowId, triggerId, last, since, labels, states, "
    "revision, inputs) and write them to an .ion file, one per line",
)


# --- Count -----------------------------------------------------------------------
class FlowRef(Strict):
    namespace: str
    flowId: str


class CountTask(BaseTask):
    flows: list[FlowRef] | None = None
    namespaces: DList | None = None
    states: Any = None
    labels: DDict | None = None
    startDate: DStr | None = None
    endDate: DStr | None = None
    # Evaluated per flow with `count` set; the flow is kept when it is true.
    expression: str | None = Field(default=None)

    @field_validator("states", mode="before")
    @classmethod
    def _check_states(cls, value: Any) -> Any:
        return _states(value)


def run_count(ctx: RunContext, props: CountTask) -> dict:
    if not props.flows and not props.namespaces:
        raise TaskFailed("Count needs 'flows' or 'namespaces' to know what to count")
    counts = _query(
        ctx,
        "count_executions",
        flows=[(f.namespace, f.flowId) for f in props.flows or []],
        namespaces=[str(n) for n in props.namespaces or []],
        states=_states(props.states),
        labels=_labels(props.labels),
        created_after=_datetime(props.startDate, "startDate"),
        created_before=_datetime(props.endDate, "endDate"),
    )
    results = []
    for row in counts:
        if props.expression:
            keep = truthy(
                evaluate(props.expression, {**ctx.variables, "count": row["count"]})
            )
            if not keep:
                continue
        results.append(row)
    total = sum(row["count"] for row in results)
    return {"results": results, "total": total, "count": total}


register(
    "io.kestra.plugin.core.execution.Count",
    CountTask,
    run=run_count,
    aliases=("io.kestra.core.tasks.executions.Counts",),
    raw_properties=("expression",),
    summary="Count executions per flow; 'expression' (with count) keeps matching flows",
)
