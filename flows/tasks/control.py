"""Tasks that wait on something outside their execution: Subflow and
ForEachItem (child executions) and Pause (a person or a delay).

They are resolved by the executor (``executions/engine/subflows.py`` and
``pauses.py``), never by a worker: while they wait, no worker thread is held.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator, model_validator

from flows.expressions import ExpressionError, _to_datetime, is_dynamic
from flows.tasks.fields import (
    BaseTask,
    DBool,
    DDict,
    DDuration,
    DInt,
    DSize,
    DStr,
    Strict,
    TaskList,
    one_of,
)
from flows.tasks.registry import register

PAUSE_BEHAVIORS = ("RESUME", "WARN", "FAIL", "CANCEL")
RESTART_BEHAVIORS = ("RETRY_FAILED", "NEW_EXECUTION")


class _ChildFlow(BaseTask):
    namespace: DStr
    flowId: DStr
    revision: DInt | None = None
    inputs: DDict | None = None
    labels: DDict | list[dict[str, Any]] | None = None
    inheritLabels: DBool = False
    wait: DBool = True
    transmitFailed: DBool = True
    # When the parent is restarted: restart the failed child execution in
    # place (RETRY_FAILED, Kestra's default) or start a new one.
    restartBehavior: str = "RETRY_FAILED"
    # Start the child(ren) at this date instead of now (ISO 8601 or an expression).
    scheduleDate: DStr | None = None

    @field_validator("restartBehavior", mode="before")
    @classmethod
    def _check_restart_behavior(cls, value: Any) -> str:
        return one_of(value, RESTART_BEHAVIORS, "restartBehavior")

    @field_validator("scheduleDate")
    @classmethod
    def _check_schedule_date(cls, value: Any) -> Any:
        if value is None or is_dynamic(value):
            return value
        try:
            _to_datetime(value)
        except (ExpressionError, ValueError):
            raise ValueError(
                f"{value!r} is not a date-time; use ISO 8601 such "
                "as 2030-01-31T08:00:00Z or an expression"
            ) from None
        return value


# --- Subflow ---------------------------------------------------------------------
class SubflowTask(_ChildFlow):
    # Kestra's older way to pick values of the ended child (rendered against
    # the child execution) when the child flow declares no outputs itself.
    outputs: dict[str, Any] | None = None


register(
    "io.kestra.plugin.core.flow.Subflow",
    SubflowTask,
    kind="flowable",
    aliases=["io.kestra.core.tasks.flows.Subflow", "io.kestra.core.tasks.flows.Flow"],
    summary="Start an execution of another flow, optionally waiting for its end",
)


# --- ForEachItem -----------------------------------------------------------------
class Batch(Strict):
    rows: DInt | None = None
    partitions: DInt | None = None
    # At most this many bytes per batch (``10MB``); rows are never split.
    bytes: DSize | None = None
    separator: DStr = "\n"

    @model_validator(mode="after")
    def _one_way(self) -> Batch:
        if self.bytes is not None and (self.rows is not None or self.partitions):
            raise ValueError(
                "give one of batch.rows, batch.partitions or batch.bytes, not several"
            )
        return self


class ForEachItemTask(_ChildFlow):
    items: DStr
    batch: Batch | None = None


register(
    "io.kestra.plugin.core.flow.ForEachItem",
    ForEachItemTask,
    kind="flowable",
    aliases=["io.kestra.core.tasks.flows.ForEachItem"],
    summary="Split a file of items into batches and start one subflow execution per batch",
)


# --- Pause -----------------------------------------------------------------------
def check_on_resume(value: Any) -> list[dict[str, Any]] | None:
    """Pause ``onResume`` inputs, declared like flow inputs (``id`` or ``name``, ``type``)."""
    # Not at the top: importing flows.spec.inputs runs flows/spec/__init__.py,
    # which imports flows.tasks while that package may still be loading this
    # module (a package-level circle grimp does not see). Moving inputs.py
    # out of flows.spec would let this import go to the top.
    from flows.spec.inputs import INPUT_TYPES

    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("onResume must be a list of inputs (id, type, ...)")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValueError(
                f"onResume[{index}]: expected an input with 'id' and 'type'"
            )
        decl = dict(item)
        if "id" not in decl and "name" in decl:
            decl["id"] = decl.pop("name")
        if not isinstance(decl.get("id"), str) or not decl["id"]:
            raise ValueError(f"onResume[{index}]: an input needs an 'id'")
        kind = str(decl.get("type", "STRING")).upper()
        if kind not in INPUT_TYPES:
            raise ValueError(
                f"onResume[{index}]: unknown input type '{decl.get('type')}'; "
                f"use one of {', '.join(INPUT_TYPES)}"
            )
        decl["type"] = {"BOOL": "BOOLEAN", "ENUM": "SELECT"}.get(kind, kind)
        out.append(decl)
    return out


class PauseTask(BaseTask):
    # Resume by itself after this long (Kestra's older name; pauseDuration is the newer one).
    delay: DDuration | None = None
    pauseDuration: DDuration | None = None
    # What happens when the pause ends by time: RESUME for delay/pauseDuration,
    # FAIL for timeout unless WARN or CANCEL is asked for.
    behavior: str | None = None
    onResume: list[dict[str, Any]] | None = None
    # Kestra's older form: tasks that run once the pause has ended.
    tasks: TaskList | None = None

    @field_validator("behavior", mode="before")
    @classmethod
    def _check_behavior(cls, value: Any) -> str | None:
        if value is None:
            return None
        return one_of(value, PAUSE_BEHAVIORS, "behavior")

    @field_validator("onResume", mode="before")
    @classmethod
    def _check_on_resume(cls, value: Any) -> list[dict[str, Any]] | None:
        return check_on_resume(value)


register(
    "io.kestra.plugin.core.flow.Pause",
    PauseTask,
    kind="flowable",
    aliases=["io.kestra.core.tasks.flows.Pause"],
    children={"tasks": "list"},
    summary="Pause the execution until resumed (with onResume inputs) or a delay elapses",
)
