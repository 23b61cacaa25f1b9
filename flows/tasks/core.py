"""The core task types: Kestra's names and behaviour."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator, model_validator

from flows.expressions import truthy
from flows.tasks.context import RunContext, TaskFailed
from flows.tasks.fields import (
    BaseTask,
    DDict,
    DDuration,
    DInt,
    DList,
    DStr,
    TaskList,
)
from flows.tasks.registry import register
from orchestra.lib import levels
from orchestra.lib.labels import SYSTEM_PREFIX, LabelError, label_map


class _LeveledTask(BaseTask):
    """A task that writes at a ``level`` (INFO unless given; WARNING means WARN)."""

    level: str = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _check_level(cls, value: Any) -> str:
        return levels.normalize(value or "INFO")


# --- Log -------------------------------------------------------------------------
class LogTask(_LeveledTask):
    message: DStr | list[DStr]


def run_log(ctx: RunContext, props: LogTask) -> dict:
    messages = props.message if isinstance(props.message, list) else [props.message]
    for message in messages:
        ctx.log(props.level, str(message))
    return {}


register(
    "io.kestra.plugin.core.log.Log",
    LogTask,
    run=run_log,
    aliases=["io.kestra.core.tasks.log.Log"],
    summary="Write a message to the logs",
)


# --- Return / Echo ---------------------------------------------------------------
class ReturnTask(BaseTask):
    format: DStr | None = None


def run_return(ctx: RunContext, props: ReturnTask) -> dict:
    return {"value": props.format}


register(
    "io.kestra.plugin.core.debug.Return",
    ReturnTask,
    run=run_return,
    aliases=["io.kestra.core.tasks.debugs.Return"],
    summary="Return a rendered value",
)


class EchoTask(_LeveledTask):
    format: DStr


def run_echo(ctx: RunContext, props: EchoTask) -> dict:
    ctx.log(props.level, str(props.format))
    return {}


register(
    "io.kestra.plugin.core.debug.Echo",
    EchoTask,
    run=run_echo,
    aliases=["io.kestra.core.tasks.debugs.Echo"],
    summary="Log a rendered value",
)


# --- OutputValues ----------------------------------------------------------------
class OutputValuesTask(BaseTask):
    values: DDict


def run_output_values(ctx: RunContext, props: OutputValuesTask) -> dict:
    return {"values": props.values}


register(
    "io.kestra.plugin.core.output.OutputValues",
    OutputValuesTask,
    run=run_output_values,
    aliases=["io.kestra.core.tasks.outputs.OutputValues"],
    summary="Expose values as outputs",
)


# --- Sleep -----------------------------------------------------------------------
class SleepTask(BaseTask):
    duration: DDuration


def run_sleep(ctx: RunContext, props: SleepTask) -> dict:
    duration: timedelta = props.duration
    ctx.sleep(duration.total_seconds())
    return {}


register(
    "io.kestra.plugin.core.flow.Sleep",
    SleepTask,
    run=run_sleep,
    aliases=["io.kestra.core.tasks.flows.Sleep"],
    summary="Wait for a duration",
)


# --- Fail ------------------------------------------------------------------------
class FailTask(BaseTask):
    condition: Any = None
    errorMessage: DStr = "Task failure"


def run_fail(ctx: RunContext, props: FailTask) -> dict:
    if props.condition is None or truthy(props.condition):
        raise TaskFailed(str(props.errorMessage))
    return {}


register(
    "io.kestra.plugin.core.execution.Fail",
    FailTask,
    run=run_fail,
    aliases=["io.kestra.core.tasks.executions.Fail"],
    summary="Fail the execution, optionally when a condition holds",
)


# --- Labels ----------------------------------------------------------------------
class LabelsTask(BaseTask):
    # A mapping, a list of {key, value}, or (Kestra) the JSON text of a mapping.
    labels: DDict | list[dict[str, Any]] | DStr


def run_labels(ctx: RunContext, props: LabelsTask) -> dict:
    value = props.labels
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise TaskFailed(
                f"labels: expected a mapping or the JSON text of one, got {value[:80]!r}"
            ) from None
    try:
        labels = label_map(value)
    except LabelError as exc:
        raise TaskFailed(f"labels: {exc}") from None
    system = sorted(k for k in labels if k.startswith(SYSTEM_PREFIX))
    if system:
        # Kestra's Labels task: system labels are the engine's alone.
        raise TaskFailed(
            f"labels: system labels can only be set by the engine: {', '.join(system)}"
        )
    ctx.set_labels(labels)
    return {}


register(
    "io.kestra.plugin.core.execution.Labels",
    LabelsTask,
    run=run_labels,
    aliases=["io.kestra.core.tasks.executions.Labels"],
    summary="Add or change labels of the running execution",
)


# --- Flowable tasks (resolved by the executor) -----------------------------------
class SequentialTask(BaseTask):
    tasks: TaskList


register(
    "io.kestra.plugin.core.flow.Sequential",
    SequentialTask,
    kind="flowable",
    aliases=["io.kestra.core.tasks.flows.Sequential"],
    children={"tasks": "list"},
    summary="Run tasks one after the other",
)


class ParallelTask(BaseTask):
    tasks: TaskList
    concurrent: DInt = 0


register(
    "io.kestra.plugin.core.flow.Parallel",
    ParallelTask,
    kind="flowable",
    aliases=["io.kestra.core.tasks.flows.Parallel"],
    children={"tasks": "list"},
    summary="Run tasks at the same time (concurrent: limit, 0 = no limit)",
)


class AllowFailureTask(BaseTask):
    tasks: TaskList


register(
    "io.kestra.plugin.core.flow.AllowFailure",
    AllowFailureTask,
    kind="flowable",
    aliases=["io.kestra.core.tasks.flows.AllowFailure"],
    children={"tasks": "list"},
    summary="Run tasks; their failure ends in WARNING",
)


class IfTask(BaseTask):
    condition: Any
    then: TaskList
    else_: list[dict[str, Any]] | None = Field(default=None, alias="else")


register(
    "io.kestra.plugin.core.flow.If",
    IfTask,
    kind="flowable",
    aliases=["io.kestra.core.tasks.flows.If"],
    children={"then": "list", "else": "list"},
    summary="Run 'then' or 'else' depending on a condition",
)


class SwitchTask(BaseTask):
    value: Any
    cases: dict[Any, list[dict[str, Any]]] = Field(default_factory=dict)
    defaults: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _some_branch(self) -> SwitchTask:
        # Kestra's SwitchTaskValidation: a Switch needs cases or defaults.
        if not self.cases and not self.defaults:
            raise ValueError("a Switch needs 'cases' or 'defaults'")
        return self


register(
    "io.kestra.plugin.core.flow.Switch",
    SwitchTask,
    kind="flowable",
    aliases=["io.kestra.core.tasks.flows.Switch"],
    children={"cases": "map", "defaults": "list"},
    summary="Run the tasks of the case matching a value",
)


class ForEachTask(BaseTask):
    values: DList | DStr
    concurrencyLimit: DInt = 1
    tasks: TaskList


register(
    "io.kestra.plugin.core.flow.ForEach",
    ForEachTask,
    kind="flowable",
    children={"tasks": "list"},
    summary="Run tasks once per value (concurrencyLimit: 0 = no limit)",
)


class EachSequentialTask(BaseTask):
    value: DList | DStr
    tasks: TaskList


register(
    "io.kestra.plugin.core.flow.EachSequential",
    EachSequentialTask,
    kind="flowable",
    aliases=["io.kestra.core.tasks.flows.EachSequential"],
    children={"tasks": "list"},
    summary="Older name of ForEach with concurrencyLimit 1",
)


class EachParallelTask(BaseTask):
    value: DList | DStr
    concurrent: DInt = 0
    tasks: TaskList


register(
    "io.kestra.plugin.core.flow.EachParallel",
    EachParallelTask,
    kind="flowable",
    aliases=["io.kestra.core.tasks.flows.EachParallel"],
    children={"tasks": "list"},
    summary="Older name of ForEach with no concurrency limit",
)
