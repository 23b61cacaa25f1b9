"""``core.condition.Expression`` used as a task.

In Kestra this type is a condition (for triggers, or a task's ``conditions``),
and some published examples also list it under ``tasks`` and read
``outputs.<id>.value`` afterwards. Here it runs as such a task: it evaluates
``expression`` and outputs ``value`` (true or false).
"""

from __future__ import annotations

from typing import Any

from flows.expressions import truthy
from flows.tasks.context import RunContext
from flows.tasks.fields import BaseTask
from flows.tasks.registry import register


class ExpressionTask(BaseTask):
    expression: Any


def run_expression(ctx: RunContext, props: ExpressionTask) -> dict[str, Any]:
    value = truthy(props.expression)
    ctx.log("DEBUG", f"expression is {'true' if value else 'false'}")
    return {"value": value}


register(
    "io.kestra.plugin.core.condition.Expression",
    ExpressionTask,
    run=run_expression,
    aliases=("io.kestra.core.models.conditions.types.ExpressionCondition",),
    summary="Evaluate an expression; output 'value' is true or false",
)
