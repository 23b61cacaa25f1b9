"""The built-in control flowables: Sequential, AllowFailure, Parallel, If,
Switch and ForEach (EachSequential, EachParallel). Each resolves its
children through the executor's plan (``executor._Plan``) and returns a
state or RUNNING; an expression decision is kept in the task run's outputs
(``plan.once``) so later passes and restarts see the same one.
"""

from __future__ import annotations

import json
from typing import Any

from executions.engine.flowable import RUNNING, allowed_state
from executions.models import State, TaskRun
from flows.expressions import ExpressionError, evaluate, render, truthy
from flows.spec import TaskNode, case_key
from orchestra.lib.secrets import mask

# Jackson's compact separators: a value is the text Kestra shows for it.
JSON_SEPARATORS = (",", ":")


def _sequential(plan, node: TaskNode, tr: TaskRun, value: str | None) -> str:
    return plan.resolve_list(node.children.get("tasks", []), tr, value)


def _allow_failure(plan, node: TaskNode, tr: TaskRun, value: str | None) -> str:
    # The children's own state: local errors run on it, then allowed_state
    # turns the failure into a WARNING.
    return plan.resolve_list(node.children.get("tasks", []), tr, value)


def _parallel_over(plan, items: list[tuple[Any, bool]], limit: int, start_item) -> str:
    """Run items concurrently, at most ``limit`` at once (0 = no limit).

    ``items`` are (item, already_started); ``start_item(item)`` resolves one
    item and returns its state. After a failure nothing new starts, and the
    group fails once what was in flight has finished."""
    results = []
    in_flight = 0
    failed = False
    for item, started in items:
        if not started and (failed or (limit and in_flight >= limit)):
            continue
        state = start_item(item)
        if state == RUNNING:
            in_flight += 1
        elif state in (State.FAILED, State.KILLED):
            failed = True
        results.append(state)
    if in_flight:
        return RUNNING
    if failed:
        return State.FAILED
    if len(results) < len(items):
        return RUNNING
    return State.WARNING if State.WARNING in results else State.SUCCESS


def _parallel(plan, node: TaskNode, tr: TaskRun, value: str | None) -> str:
    children = [c for c in node.children.get("tasks", []) if not c.props.disabled]
    limit = int(node.props.concurrent or 0)
    items = [(c, (c.id, tr.pk, value) in plan.latest) for c in children]

    def start(child: TaskNode) -> str:
        return allowed_state(child, plan.resolve_node(child, tr, value))

    return _parallel_over(plan, items, limit, start)


def _if(plan, node: TaskNode, tr: TaskRun, value: str | None) -> str:
    condition = plan.once(
        tr,
        "condition",
        lambda: truthy(evaluate(node.props.condition, plan.context(tr, value))),
    )
    branch = node.children.get("then" if condition else "else", [])
    return plan.resolve_list(branch, tr, value)


def _switch(plan, node: TaskNode, tr: TaskRun, value: str | None) -> str:
    chosen = plan.once(
        tr,
        "value",
        lambda: (
            str(render(node.props.value, plan.context(tr, value)))
            if isinstance(node.props.value, str)
            else case_key(node.props.value)
        ),
    )
    # Kestra's Switch output: the value, and whether it fell to the defaults.
    plan.once(tr, "defaults", lambda: chosen not in node.case_children)
    if chosen in node.case_children:
        branch = node.case_children[chosen]
    elif "defaults" in node.children:
        branch = node.children["defaults"]
    else:
        # Kestra's Switch finds no task for the value and fails
        # (FlowableUtils.resolveState: "No task found").
        raise ExpressionError(
            f"no case matches the value {chosen!r} and there are no defaults"
        )
    return plan.resolve_list(branch, tr, value)


def _loop_values(raw: Any, plan, tr: TaskRun, value: str | None) -> list[str]:
    values = evaluate(raw, plan.context(tr, value))
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except json.JSONDecodeError:
            raise ExpressionError(
                f"values must be a list or a JSON array, got {values[:80]!r}"
            ) from None
    if isinstance(values, dict):
        values = [
            json.dumps({k: v}, separators=JSON_SEPARATORS) for k, v in values.items()
        ]
    if not isinstance(values, list):
        raise ExpressionError(f"values must be a list, got {type(values).__name__}")
    nulls = sum(1 for v in values if v is None)
    if nulls:
        # Kestra's FlowableUtils.resolveEachTasks: a null value fails the loop.
        raise ExpressionError(f"found {nulls} null value(s) in the ForEach values")
    texts = [
        v
        if isinstance(v, str)
        else json.dumps(v, default=str, separators=JSON_SEPARATORS)
        for v in values
    ]
    # Kestra iterates over the distinct values, in their order. Stored as
    # task run values and shown: masked before they exist anywhere.
    return [mask(text) for text in dict.fromkeys(texts)]


def _for_each(plan, node: TaskNode, tr: TaskRun, value: str | None) -> str:
    props = node.props
    raw = getattr(props, "values", None)
    if raw is None:
        raw = props.value
    if node.type.short == "EachSequential":
        limit = 1
    elif node.type.short == "EachParallel":
        limit = int(props.concurrent or 0)
    else:
        limit = int(props.concurrencyLimit)
    values = plan.once(tr, "values", lambda: _loop_values(raw, plan, tr, value))
    tasks = [c for c in node.children.get("tasks", []) if not c.props.disabled]
    if not values or not tasks:
        return State.SUCCESS
    started_values = plan.values_under.get(tr.pk, set())
    items = [(v, v in started_values) for v in values]
    return _parallel_over(plan, items, limit, lambda v: plan.resolve_list(tasks, tr, v))


FLOWABLES = {
    "io.kestra.plugin.core.flow.Sequential": _sequential,
    "io.kestra.plugin.core.flow.AllowFailure": _allow_failure,
    "io.kestra.plugin.core.flow.Parallel": _parallel,
    "io.kestra.plugin.core.flow.If": _if,
    "io.kestra.plugin.core.flow.Switch": _switch,
    "io.kestra.plugin.core.flow.ForEach": _for_each,
    "io.kestra.plugin.core.flow.EachSequential": _for_each,
    "io.kestra.plugin.core.flow.EachParallel": _for_each,
}
