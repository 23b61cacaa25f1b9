"""The executor's side of Subflow, ForEachItem and Pause.

Nothing here holds a worker thread. A Subflow task run stays RUNNING while
its child runs; when the child ends, ``_child_ended`` (a receiver of the
state-change signal, inside the child's transaction) sends the parent's
``advance`` after commit, and the parent reads the child's final state. A
Pause moves its task run to PAUSED and the execution to PAUSED; it ends
through ``lifecycle.resume`` or, for a delay or timeout, through an ``advance``
sent with a Celery countdown (``wake_paused`` in the liveness sweep is the net
for a lost message).

Each function here takes the executor's plan and returns a state or RUNNING,
like the flowables in executor.py.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.core.files.storage import default_storage
from django.db.models import Count
from django.utils import timezone

from executions import dispatch
from executions.engine.context import expression_context
from executions.lifecycle import machine, stop
from executions.lifecycle.actor import EXECUTOR, Actor
from executions.lifecycle.base import ActionError
from executions.lifecycle.restart import restart
from executions.lifecycle.start import create_execution, get_flow
from executions.models import TERMINAL, Cause, Execution, State, TaskRun
from executions.signals import execution_state_changed, executions_state_changed
from flows.spec.inputs import InputError
from flows.tasks.context import TaskFailed
from orchestra.lib.dates import parse_datetime
from orchestra.lib.labels import label_map

log = logging.getLogger("orchestra.executor")

RUNNING = "RUNNING"  # resolution result: something is still in flight
SUBFLOW = "io.kestra.plugin.core.flow.Subflow"
FOR_EACH_ITEM = "io.kestra.plugin.core.flow.ForEachItem"
CHILD_FAILED = {State.FAILED, State.KILLED, State.CANCELLED}


class _Vars:
    """Just enough of a RunContext for the worker's property rendering."""

    def __init__(self, variables: dict[str, Any]):
        self.variables = variables

    def render(self, value: Any) -> Any:
        from flows.expressions import render

        return render(value, self.variables)


def task_context(plan, tr: TaskRun, **taskrun_extra: Any) -> dict[str, Any]:
    context = plan.context(None, None, taskrun=tr)
    context["taskrun"] = {**context.get("taskrun", {}), **taskrun_extra}
    return context


def render_props(node, context: dict[str, Any], keep: tuple[str, ...] = ()):
    """Render and validate a task's properties as the worker does (raises
    TaskFailed or ExpressionError with the reason)."""
    from executions.engine.worker import _render_props

    if keep:
        node = _Partial(node, keep)
    return _render_props(_Vars(context), node)


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


def _finish(plan, tr: TaskRun, state: str, reason: str = "", **fields: Any) -> str:
    machine.transition_taskrun(tr, state, reason=reason, fields=fields, actor=EXECUTOR)
    plan._context = None
    return state


def _save_outputs(tr: TaskRun, outputs: dict[str, Any]) -> None:
    TaskRun.objects.filter(pk=tr.pk).update(outputs=outputs)
    tr.outputs = outputs


# --- child executions ------------------------------------------------------------
def _labels(plan, props) -> dict[str, str]:
    labels = dict(plan.execution.labels or {}) if props.inheritLabels else {}
    if props.labels:
        try:
            labels.update(label_map(props.labels))
        except ValueError as exc:
            raise TaskFailed(f"labels: {exc}") from None
    return labels


def _revision(props):
    try:
        flow = get_flow(str(props.namespace), str(props.flowId))
    except ActionError as exc:
        raise TaskFailed(str(exc)) from None
    if props.revision is None:
        return flow.latest
    revision = flow.revisions.filter(revision=props.revision).first()
    if revision is None:
        raise TaskFailed(
            f"flow {flow} has no revision {props.revision} (latest is {flow.revision})"
        )
    return revision


MAX_DEPTH = 25  # subflows inside subflows; deeper is a flow starting itself


def _check_depth(plan, revision) -> None:
    depth, parent_id = 1, plan.execution.parent_id
    while parent_id and depth < MAX_DEPTH:
        parent_id = (
            Execution.objects.filter(pk=parent_id)
            .values_list("parent_id", flat=True)
            .first()
        )
        depth += 1
    if depth >= MAX_DEPTH:
        raise TaskFailed(
            f"subflows nest at most {MAX_DEPTH} levels deep; does "
            f"{revision.flow} start itself?"
        )


def _start_child(
    plan,
    node,
    tr: TaskRun,
    revision,
    props,
    inputs: dict[str, Any],
    scheduled_at=None,
    **trigger_extra: Any,
) -> Execution:
    parent = plan.execution
    trigger = {
        "type": node.type.name,
        "variables": {
            "executionId": parent.pk,
            "namespace": parent.namespace,
            "flowId": parent.flow_id,
            "flowRevision": parent.revision,
            "taskId": tr.task_id,
            "taskRunId": tr.pk,
            **trigger_extra,
        },
    }
    try:
        return create_execution(
            revision,
            inputs=inputs,
            labels=_labels(plan, props),
            trigger=trigger,
            actor=Actor.system(f"execution {parent.pk}", Cause.EXECUTOR),
            parent=parent,
            parent_taskrun_id=tr.pk,
            scheduled_at=scheduled_at,
        )
    except InputError as exc:
        raise TaskFailed(f"subflow {revision.flow}: {exc}") from None
    except ActionError as exc:
        raise TaskFailed(str(exc)) from None


def _outcome(child_state: str, transmit_failed: bool) -> str:
    if child_state in CHILD_FAILED:
        return State.FAILED if transmit_failed else State.SUCCESS
    if child_state == State.WARNING and transmit_failed:
        return State.WARNING
    return State.SUCCESS


def subflow(plan, node, tr: TaskRun, value: str | None) -> str:
    outputs = tr.outputs or {}
    props = render_props(node, task_context(plan, tr))
    if "executionId" not in outputs:
        revision = _revision(props)
        _check_depth(plan, revision)
        when = schedule_date(props)
        child = _start_child(
            plan, node, tr, revision, props, dict(props.inputs or {}), when
        )
        _save_outputs(tr, {"executionId": child.pk})
        plan._log(
            "INFO",
            f"{tr.task_id}: started execution {child.pk} of {revision.flow} "
            f"(revision {revision.revision})"
            + (f", scheduled for {when.isoformat()}" if when else "")
            + ("" if props.wait else ", not waiting"),
            tr,
        )
        if not props.wait:
            return _finish(plan, tr, State.SUCCESS, outputs={"executionId": child.pk})
        return RUNNING
    child = (
        Execution.objects.filter(pk=outputs["executionId"])
        .values("pk", "state", "outputs", "error")
        .first()
    )
    if child is None:
        raise TaskFailed(f"subflow execution {outputs['executionId']} no longer exists")
    if child["state"] not in TERMINAL:
        return RUNNING
    state = _outcome(child["state"], props.transmitFailed)
    result = {
        "executionId": child["pk"],
        "state": child["state"],
        "outputs": child["outputs"],
    }
    reason = ""
    if child["state"] in CHILD_FAILED:
        reason = f"subflow execution {child['pk']} ended {child['state']}"
        if child["error"]:
            reason += f": {child['error']}"
        if state == State.SUCCESS:
            plan._log(
                "WARN",
                f"{tr.task_id}: {reason}; transmitFailed is false, so this task "
                "succeeds",
                tr,
            )
            reason = ""
    return _finish(plan, tr, state, reason, outputs=result, error=reason)


# --- ForEachItem -----------------------------------------------------------------
def _items(path: str, separator: str):
    """The non-blank items of a stored file, read as a stream for the usual
    one-item-per-line files."""
    with default_storage.open(path, "rb") as handle:
        if separator == "\n":
            for raw in handle:
                item = raw.decode("utf-8").rstrip("\r\n")
                if item.strip():
                    yield item
            return
        for item in handle.read().decode("utf-8").split(separator):
            if item.strip():
                yield item


def _split(uri: str, props, tr: TaskRun, plan) -> list[str]:
    """Write the batches of ``uri`` to storage; return their URIs."""
    from executions.storage import StorageError, path_of, save

    try:
        path = path_of(str(uri))
    except StorageError as exc:
        raise TaskFailed(f"items: {exc}") from None
    if not default_storage.exists(path):
        raise TaskFailed(f"items: no file stored at {uri}")
    batch = props.batch
    separator = (batch.separator if batch else "\n") or "\n"
    rows = batch.rows if batch and batch.rows else None
    partitions = batch.partitions if batch and batch.partitions else None
    if rows is not None and (not isinstance(rows, int) or rows < 1):
        raise TaskFailed(f"batch.rows must be a whole number ≥ 1, got {rows!r}")
    if partitions is not None and (not isinstance(partitions, int) or partitions < 1):
        raise TaskFailed(
            f"batch.partitions must be a whole number ≥ 1, got {partitions!r}"
        )
    limit = batch.bytes if batch else None
    try:
        if partitions:
            total = sum(1 for _ in _items(path, separator))
            size = max(-(-total // partitions), 1)
        else:
            size = rows or 1
        folder = (
            f"{plan.execution.namespace.replace('.', '/')}/{plan.execution.flow_id}/"
            f"executions/{plan.execution.pk}/tasks/{tr.task_id}/{tr.pk}"
        )
        uris: list[str] = []
        chunk: list[str] = []

        def flush() -> None:
            body = "".join(item + "\n" for item in chunk)
            uris.append(
                save(f"{folder}/batch-{len(uris) + 1}.ion", body.encode("utf-8"))
            )
            chunk.clear()

        if limit:
            # batch.bytes: whole rows, as many as fit; a row larger than the
            # limit makes a batch of its own.
            used = 0
            for item in _items(path, separator):
                length = len(item.encode("utf-8")) + 1
                if chunk and used + length > limit:
                    flush()
                    used = 0
                chunk.append(item)
                used += length
        else:
            for item in _items(path, separator):
                chunk.append(item)
                if len(chunk) == size:
                    flush()
        if chunk:
            flush()
    except UnicodeDecodeError as exc:
        raise TaskFailed(
            f"items: {uri} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    return uris


def _start_batch(
    plan, node, tr: TaskRun, revision, props, iteration: int, uri: str, when=None
) -> Execution:
    from flows.expressions import render

    context = task_context(plan, tr, items=uri, iteration=iteration)
    inputs = render(node.raw.get("inputs") or {}, context)
    if not isinstance(inputs, dict):
        raise TaskFailed("inputs must be a mapping of input name to value")
    return _start_child(
        plan, node, tr, revision, props, inputs, when, iteration=iteration, items=uri
    )


def _batches(tr: TaskRun):
    """The child executions of a ForEachItem task run, without those a
    restart replaced by new ones (restartBehavior NEW_EXECUTION)."""
    return Execution.objects.filter(
        parent_id=tr.execution_id, parent_taskrun_id=tr.pk
    ).exclude(pk__in=(tr.outputs or {}).get("replaced", []))


def for_each_item(plan, node, tr: TaskRun, value: str | None) -> str:
    outputs = tr.outputs or {}
    props = render_props(node, task_context(plan, tr), keep=("inputs",))
    if "numberOfBatches" not in outputs:
        revision = _revision(props)
        _check_depth(plan, revision)
        when = schedule_date(props)
        batches = _split(props.items, props, tr, plan)
        for iteration, uri in enumerate(batches, start=1):
            _start_batch(plan, node, tr, revision, props, iteration, uri, when)
        counts = {State.CREATED.value: len(batches)} if batches else {}
        _save_outputs(tr, {"numberOfBatches": len(batches), "iterations": counts})
        plan._log(
            "INFO",
            f"{tr.task_id}: {len(batches)} batch(es) of {revision.flow}"
            + (f", scheduled for {when.isoformat()}" if when else "")
            + ("" if props.wait else ", not waiting"),
            tr,
        )
        if not props.wait:
            return _finish(plan, tr, State.SUCCESS, outputs=tr.outputs)
    mine = _batches(tr)
    # Counted in the database: each child's end runs this pass, so it must not
    # load every child's outputs until the last one has ended.
    counts = dict(mine.order_by().values_list("state").annotate(n=Count("pk")))
    if counts != tr.outputs.get("iterations"):
        _save_outputs(tr, {**tr.outputs, "iterations": counts})
    if any(state not in TERMINAL for state in counts):
        return RUNNING
    from executions.storage import save

    children = sorted(
        mine.values("pk", "state", "outputs", "trigger"),
        key=lambda c: (_iteration(c["trigger"]), c["pk"]),
    )
    merged = "".join(
        json.dumps(child["outputs"] or {}, ensure_ascii=False, default=str) + "\n"
        for child in children
    )
    uri = save(
        f"{plan.execution.namespace.replace('.', '/')}/{plan.execution.flow_id}/"
        f"executions/{plan.execution.pk}/tasks/{tr.task_id}/{tr.pk}/outputs.ion",
        merged.encode("utf-8"),
    )
    result = {**tr.outputs, "uri": uri}
    failed = [c for c in children if c["state"] in CHILD_FAILED]
    if failed:
        ids = ", ".join(str(c["pk"]) for c in failed[:10])
        reason = f"{len(failed)} of {len(children)} subflow executions failed ({ids})"
        if props.transmitFailed:
            return _finish(plan, tr, State.FAILED, reason, outputs=result, error=reason)
        plan._log(
            "WARN",
            f"{tr.task_id}: {reason}; transmitFailed is false, so this task succeeds",
            tr,
        )
    warned = props.transmitFailed and any(c["state"] == State.WARNING for c in children)
    return _finish(plan, tr, State.WARNING if warned else State.SUCCESS, outputs=result)


def _iteration(trigger: dict | None) -> int:
    iteration = ((trigger or {}).get("variables") or {}).get("iteration")
    return iteration if isinstance(iteration, int) else 0


# --- restart -------------------------------------------------------------------
def restart_in_place(plan, node, tr: TaskRun) -> bool:
    """A restart marked this Subflow or ForEachItem task run RESTARTED.

    Subflow with RETRY_FAILED (the default) restarts its failed child
    execution in place; ForEachItem keeps its batches and, per failed batch,
    restarts the child (RETRY_FAILED) or starts a new one for the same items
    (NEW_EXECUTION), so successful batches keep their outputs. Returns False
    when the task should rather get a new attempt: a Subflow with
    NEW_EXECUTION, a child that cannot be restarted, or a ForEachItem that
    failed before splitting its items.
    """
    if node.type.name not in (SUBFLOW, FOR_EACH_ITEM):
        return False
    outputs = tr.outputs or {}
    behavior = getattr(node.props, "restartBehavior", "RETRY_FAILED")
    if node.type.name == SUBFLOW:
        child_id = outputs.get("executionId")
        if behavior != "RETRY_FAILED" or child_id is None:
            return False
        child = Execution.objects.filter(pk=child_id).only("pk", "state").first()
        if child is None or child.state not in CHILD_FAILED:
            return False
        if not _restart_child(plan, child.pk):
            return False
        _run_again(plan, tr, {"executionId": child.pk})
        plan._log("INFO", f"{tr.task_id}: restarted execution {child.pk}", tr)
        return True
    if "numberOfBatches" not in outputs:
        return False
    _run_again(plan, tr, {k: v for k, v in outputs.items() if k != "uri"})
    failed = list(
        _batches(tr)
        .filter(state__in=CHILD_FAILED)
        .order_by("pk")
        .values_list("pk", "trigger")
    )
    again: list[tuple[int, dict]] = []
    for pk, trigger in failed:
        if behavior != "RETRY_FAILED" or not _restart_child(plan, pk):
            again.append((pk, (trigger or {}).get("variables") or {}))
    if again:
        props = render_props(node, task_context(plan, tr), keep=("inputs",))
        revision = _revision(props)
        for _, variables in again:
            _start_batch(
                plan,
                node,
                tr,
                revision,
                props,
                variables.get("iteration"),
                variables.get("items"),
            )
        replaced = [*tr.outputs.get("replaced", []), *(pk for pk, _ in again)]
        _save_outputs(tr, {**tr.outputs, "replaced": replaced})
    plan._log(
        "INFO",
        f"{tr.task_id}: restart re-runs {len(failed)} failed batch(es) of "
        f"{outputs['numberOfBatches']}"
        + (f" ({len(again)} as new executions)" if again else ""),
        tr,
    )
    return True


def _run_again(plan, tr: TaskRun, outputs: dict[str, Any]) -> None:
    machine.transition_taskrun(
        tr,
        State.RUNNING,
        reason="restarted",
        fields={
            "attempt": tr.attempt + 1,
            "ended_at": None,
            "error": "",
            "outputs": outputs,
        },
        actor=EXECUTOR,
    )
    plan._context = None


def _restart_child(plan, child_id: int) -> bool:
    """Restart a failed child execution in place (its own failed branch
    runs again). Lock order is parent then child, as in kill."""
    try:
        restart(
            child_id,
            actor=Actor.system(f"execution {plan.execution.pk}", Cause.EXECUTOR),
            reason=f"parent execution {plan.execution.pk} restarted",
        )
    except ActionError as exc:
        log.warning("could not restart child execution %s: %s", child_id, exc)
        return False
    return True


# --- Pause -----------------------------------------------------------------------
def pause_plan(props) -> tuple[timedelta | None, str]:
    """When a pause ends by itself and how: (after, behavior)."""
    candidates = []
    for value, default in (
        (props.delay, "RESUME"),
        (props.pauseDuration, "RESUME"),
        (props.timeout, "FAIL"),
    ):
        if isinstance(value, timedelta):
            behavior = props.behavior or default
            if default == "FAIL" and behavior == "RESUME":
                behavior = "FAIL"
            candidates.append((value, behavior))
    if not candidates:
        return None, ""
    return min(candidates, key=lambda c: c[0])


def pause(plan, node, tr: TaskRun, value: str | None) -> str:
    if tr.state == State.PAUSED:
        return RUNNING
    props = render_props(node, task_context(plan, tr))
    after, behavior = pause_plan(props)
    wake = timezone.now() + after if after is not None else None
    how = (
        f"; {behavior.lower()} after {after.total_seconds():g}s"
        if after is not None
        else "; waiting for a resume"
    )
    machine.transition_taskrun(
        tr,
        State.PAUSED,
        reason=f"paused{how}",
        fields={"scheduled_at": wake},
        actor=EXECUTOR,
    )
    plan.pauses.append((tr, wake))
    return RUNNING


def enter_pause(plan) -> None:
    """After a pass that reached a Pause: the execution waits as PAUSED."""
    execution = plan.execution
    names = ", ".join(sorted({tr.task_id for tr, _ in plan.pauses}))
    machine.transition(
        execution, State.PAUSED, reason=f"paused by task {names}", actor=EXECUTOR
    )
    wakes = [wake for _, wake in plan.pauses if wake is not None]
    if wakes:
        countdown = max((min(wakes) - timezone.now()).total_seconds(), 0.0)
        dispatch.get().advance(execution.pk, countdown=countdown or 0.001)


def wake_due(execution: Execution) -> bool:
    """End the pauses whose time has come (under the execution's lock).
    Returns True when the execution is RUNNING again."""
    now = timezone.now()
    paused = list(TaskRun.objects.filter(execution=execution, state=State.PAUSED))
    due = [
        tr for tr in paused if tr.scheduled_at is not None and tr.scheduled_at <= now
    ]
    if not paused:
        # Nothing is paused (a resume raced with this wake-up, or a crash
        # between the two updates): the execution goes on.
        machine.transition(execution, State.RUNNING, reason="resumed", actor=EXECUTOR)
        return True
    if not due:
        future = [tr.scheduled_at for tr in paused if tr.scheduled_at is not None]
        if future:  # woken early: sleep again until the first one is due
            dispatch.get().advance(
                execution.pk, countdown=max((min(future) - now).total_seconds(), 0.001)
            )
        return False
    spec = execution.spec
    reasons = []
    for tr in due:
        node = spec.task(tr.task_id)
        after, behavior = (None, "FAIL")
        if node is not None:
            try:
                props = render_props(node, expression_context(execution, tr))
                after, behavior = pause_plan(props)
            except Exception as exc:  # noqa: BLE001 — a broken property fails the pause
                behavior = "FAIL"
                log.warning(
                    "pause %s of execution %s: %s", tr.task_id, execution.pk, exc
                )
        waited = f"{after.total_seconds():g}s" if after is not None else "its time"
        if behavior == "CANCEL":
            stop.stop(
                execution.pk,
                final=State.CANCELLED,
                actor=EXECUTOR,
                reason=f"pause '{tr.task_id}' ended after {waited} (behavior CANCEL)",
            )
            execution.refresh_from_db()
            return False
        if behavior == "RESUME":
            reason = f"resumed after {waited}"
            machine.transition_taskrun(tr, State.SUCCESS, reason=reason, actor=EXECUTOR)
        elif behavior == "WARN":
            reason = f"not resumed within {waited}"
            machine.transition_taskrun(
                tr,
                State.WARNING,
                reason=reason,
                fields={"error": reason},
                actor=EXECUTOR,
            )
        else:
            reason = f"not resumed within {waited}"
            machine.transition_taskrun(
                tr,
                State.FAILED,
                reason=reason,
                fields={"error": reason},
                actor=EXECUTOR,
            )
        reasons.append(f"{tr.task_id} {reason}")
    if len(due) < len(paused):
        return False
    machine.transition(
        execution, State.RUNNING, reason="; ".join(reasons), actor=EXECUTOR
    )
    return True


def wake_paused(limit: int = 500) -> int:
    """Sweep: advance PAUSED executions whose pause is overdue (its countdown
    message was lost, e.g. a broker restart without persistence)."""
    from executions.engine.worker import advance_and_dispatch

    cutoff = timezone.now() - timedelta(seconds=1)
    ids = list(
        TaskRun.objects.filter(
            state=State.PAUSED, scheduled_at__lt=cutoff, execution__state=State.PAUSED
        )
        .values_list("execution_id", flat=True)
        .distinct()[:limit]
    )
    for pk in ids:
        advance_and_dispatch(pk)
    return len(ids)


# --- scheduleDate ------------------------------------------------------------------
def not_yet(execution: Execution) -> bool:
    """A CREATED execution scheduled for later (under its lock): True, and
    its start is sent again for the right time, when the message came early."""
    when = execution.scheduled_at
    if when is None:
        return False
    seconds = (when - timezone.now()).total_seconds()
    if seconds <= 1:
        return False
    dispatch.get().advance(execution.pk, countdown=seconds)
    return True


def start_scheduled(limit: int = 500) -> int:
    """Sweep: start CREATED executions whose scheduled date has passed (their
    countdown message was lost). The ``ex_scheduled_start`` partial index
    keeps it to the few executions that wait for a date."""
    from executions.engine.worker import advance_and_dispatch

    cutoff = timezone.now() - timedelta(seconds=1)
    ids = list(
        Execution.objects.filter(state=State.CREATED, scheduled_at__lt=cutoff)
        .order_by("scheduled_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        advance_and_dispatch(pk)
    return len(ids)


def schedule_date(props) -> Any:
    """The rendered ``scheduleDate`` as an aware datetime (None when unset);
    TaskFailed with the accepted forms otherwise."""
    value = getattr(props, "scheduleDate", None)
    if value in (None, ""):
        return None
    try:
        return parse_datetime(value, epoch=True)
    except (TypeError, ValueError, OverflowError, OSError):
        raise TaskFailed(
            f"scheduleDate: {str(value)[:80]!r} is not a date-time; use ISO 8601 "
            "such as 2030-01-31T08:00:00Z or an expression such as "
            "\"{{ now() | dateAdd(1, 'HOURS') }}\""
        ) from None


FLOWABLES = {
    SUBFLOW: subflow,
    FOR_EACH_ITEM: for_each_item,
    "io.kestra.plugin.core.flow.Pause": pause,
}


# --- a child's end moves its parent -----------------------------------------------
def _child_ended(
    sender, execution: Execution, old: str, new: str, **kwargs: Any
) -> None:
    if new in TERMINAL and execution.parent_id:
        # Sent after the child's commit; the parent's advance reads the end.
        dispatch.get().advance(execution.parent_id)


def _children_ended(
    sender, executions: list[Execution], new: str, **kwargs: Any
) -> None:
    if new in TERMINAL:
        for parent_id in sorted({e.parent_id for e in executions if e.parent_id}):
            dispatch.get().advance(parent_id)


execution_state_changed.connect(
    _child_ended, sender=Execution, dispatch_uid="orchestra.waiting.child_ended"
)
executions_state_changed.connect(
    _children_ended, sender=Execution, dispatch_uid="orchestra.waiting.children_ended"
)
