"""Rendering a task's properties as the worker does: expressions rendered,
child task lists and raw properties left alone, then validated by the task
type's model. The worker renders with its run context; the executor's
flowables (Subflow, ForEachItem, Pause) with the plan's variables.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from flows.expressions import render
from flows.spec import LOCAL_HANDLERS
from flows.tasks.context import TaskFailed


def render_task_props(ctx, node) -> Any:
    """``ctx`` is anything with ``render(value)`` (an EngineContext)."""
    children = set(node.type.children)
    if children:
        children |= set(LOCAL_HANDLERS)  # a container's errors/finally
    raw = {k: v for k, v in node.raw.items() if k not in children}
    keep = {"id", "type", "retry", "runIf", "conditions", *node.type.raw_properties}
    rendered = {k: (v if k in keep else ctx.render(v)) for k, v in raw.items()}
    try:
        return node.type.model.model_validate(rendered)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise TaskFailed(f"invalid properties after rendering: {problems}") from None


class _Vars:
    """Just enough of a RunContext for the worker's property rendering."""

    def __init__(self, variables: dict[str, Any]):
        self.variables = variables

    def render(self, value: Any) -> Any:
        return render(value, self.variables)


def render_props(node, context: dict[str, Any], keep: tuple[str, ...] = ()):
    """Render and validate a task's properties as the worker does (raises
    TaskFailed or ExpressionError with the reason)."""
    if keep:
        node = _Partial(node, keep)
    return render_task_props(_Vars(context), node)


class _Partial:
    """A task node whose ``keep`` properties are left unrendered (rendered
    later, once per child execution)."""

    def __init__(self, node, keep: tuple[str, ...]):
        self.type = _KeepType(node.type, keep)
        self.raw = node.raw


class _KeepType:
    def __init__(self, task_type, keep: tuple[str, ...]):
        self.model = task_type.model
        self.children = {**task_type.children, **dict.fromkeys(keep, "keep")}
        self.raw_properties = tuple(getattr(task_type, "raw_properties", ()))
