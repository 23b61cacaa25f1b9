"""The executor's side of Subflow and ForEachItem: child executions.

Nothing here holds a worker thread. A Subflow task run stays RUNNING while
its child runs; when the child ends, ``_child_ended`` (a receiver of the
state-change signal, inside the child's transaction) sends the parent's
``advance`` after commit, and the parent reads the child's final state.
ForEachItem splits a stored file into batches and starts one child per batch.
A restart re-runs the failed children in place or as new executions.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.files.storage import default_storage
from django.db.models import Count

from executions import dispatch
from executions.engine.context import expression_context
from executions.engine.flowable import RUNNING, finish, save_outputs, task_context
from executions.engine.props import render_props
from executions.engine.schedule_date import schedule_date
from executions.lifecycle import machine
from executions.lifecycle.actor import EXECUTOR, Actor
from executions.lifecycle.base import ActionError, FlowNotFound
from executions.lifecycle.restart import restart
from executions.lifecycle.start import create_execution, get_flow
from executions.models import TERMINAL, Cause, Execution, State, TaskRun
from executions.signals import execution_state_changed, executions_state_changed
from executions.storage import ExecutionFiles, StorageError, execution_folder, save
from flows.expressions import ExpressionError, render
from flows.namespaces import NamespaceUnreachable, check_reach
from flows.spec.inputs import InputError
from flows.tasks.context import TaskFailed
from orchestra.lib.labels import label_map, system_labels
from orchestra.lib.secrets import mask

log = logging.getLogger("orchestra.executor")

SUBFLOW = "io.kestra.plugin.core.flow.Subflow"
FOR_EACH_ITEM = "io.kestra.plugin.core.flow.ForEachItem"
CHILD_FAILED = {State.FAILED, State.KILLED, State.CANCELLED}


# --- child executions ------------------------------------------------------------
def _labels(plan, props) -> dict[str, str]:
    # System labels (the correlation id) always pass to the child
    # (Kestra's ExecutableUtils.systemLabels); the others with inheritLabels.
    parent_labels = plan.execution.labels or {}
    labels = dict(parent_labels) if props.inheritLabels else {}
    labels.update(system_labels(parent_labels))
    if props.labels:
        try:
            labels.update(label_map(props.labels))
        except ValueError as exc:
            raise TaskFailed(f"labels: {exc}") from None
    return labels


def _revision(plan, props):
    """The child's flow revision, if the parent's namespace may reach it. The
    error for a missing flow names no other flow of that namespace."""
    namespace, flow_id = str(props.namespace), str(props.flowId)
    parent = plan.execution
    try:
        check_reach(parent.namespace, parent.flow_id, namespace)
    except NamespaceUnreachable as exc:
        raise TaskFailed(str(exc)) from None
    try:
        flow = get_flow(namespace, flow_id)
    except FlowNotFound:
        raise TaskFailed(f"flow {namespace}.{flow_id} does not exist") from None
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
        # The child's inputs and labels are stored and shown: no secret in them
        # (the child reads its own with secret()).
        return create_execution(
            revision,
            inputs=mask(inputs),
            labels=mask(_labels(plan, props)),
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


def _picked_outputs(child_id: int, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The Subflow task's own ``outputs`` rendered against the ended child
    (Kestra's Subflow.createSubflowExecutionResult); None when the child flow
    declares outputs, which take precedence."""
    child = Execution.objects.select_related("flow_revision").get(pk=child_id)
    if child.spec.outputs:
        return None
    return render(wanted, expression_context(child))


def subflow(plan, node, tr: TaskRun, value: str | None) -> str:
    outputs = tr.outputs or {}
    # ``outputs`` belongs to the child's end: not rendered against the parent.
    props = render_props(node, task_context(plan, tr), keep=("outputs",))
    if "executionId" not in outputs:
        revision = _revision(plan, props)
        _check_depth(plan, revision)
        when = schedule_date(props)
        child = _start_child(
            plan, node, tr, revision, props, dict(props.inputs or {}), when
        )
        save_outputs(tr, {"executionId": child.pk})
        plan._log(
            "INFO",
            f"{tr.task_id}: started execution {child.pk} of {revision.flow} "
            f"(revision {revision.revision})"
            + (f", scheduled for {when.isoformat()}" if when else "")
            + ("" if props.wait else ", not waiting"),
            tr,
        )
        if not props.wait:
            return finish(plan, tr, State.SUCCESS, outputs={"executionId": child.pk})
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
    if node.raw.get("outputs"):
        try:
            picked = _picked_outputs(child["pk"], node.raw["outputs"])
        except ExpressionError as exc:
            reason = f"outputs: {exc.message}"
            plan._log("ERROR", f"{tr.task_id}: {reason}", tr)
            return finish(plan, tr, State.FAILED, reason, outputs=result, error=reason)
        if picked is not None:
            result["outputs"] = picked
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
    return finish(plan, tr, state, reason, outputs=result, error=reason)


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
    try:
        # Only a file this execution may open (its own, its parents', one
        # handed over from a namespace it may reach), like read().
        path = ExecutionFiles(plan.execution).check(str(uri))
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
            execution_folder(
                plan.execution.namespace, plan.execution.flow_id, plan.execution.pk
            )
            + f"tasks/{tr.task_id}/{tr.pk}"
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
        revision = _revision(plan, props)
        _check_depth(plan, revision)
        when = schedule_date(props)
        batches = _split(props.items, props, tr, plan)
        for iteration, uri in enumerate(batches, start=1):
            _start_batch(plan, node, tr, revision, props, iteration, uri, when)
        counts = {State.CREATED.value: len(batches)} if batches else {}
        save_outputs(tr, {"numberOfBatches": len(batches), "iterations": counts})
        plan._log(
            "INFO",
            f"{tr.task_id}: {len(batches)} batch(es) of {revision.flow}"
            + (f", scheduled for {when.isoformat()}" if when else "")
            + ("" if props.wait else ", not waiting"),
            tr,
        )
        if not props.wait:
            return finish(plan, tr, State.SUCCESS, outputs=tr.outputs)
    mine = _batches(tr)
    # Counted in the database: each child's end runs this pass, so it must not
    # load every child's outputs until the last one has ended.
    counts = dict(mine.order_by().values_list("state").annotate(n=Count("pk")))
    if counts != tr.outputs.get("iterations"):
        save_outputs(tr, {**tr.outputs, "iterations": counts})
    if any(state not in TERMINAL for state in counts):
        return RUNNING
    children = sorted(
        mine.values("pk", "state", "outputs", "trigger"),
        key=lambda c: (_iteration(c["trigger"]), c["pk"]),
    )
    merged = "".join(
        json.dumps(child["outputs"] or {}, ensure_ascii=False, default=str) + "\n"
        for child in children
    )
    folder = execution_folder(
        plan.execution.namespace, plan.execution.flow_id, plan.execution.pk
    )
    uri = save(
        f"{folder}tasks/{tr.task_id}/{tr.pk}/outputs.ion", merged.encode("utf-8")
    )
    result = {**tr.outputs, "uri": uri}
    failed = [c for c in children if c["state"] in CHILD_FAILED]
    if failed:
        ids = ", ".join(str(c["pk"]) for c in failed[:10])
        reason = f"{len(failed)} of {len(children)} subflow executions failed ({ids})"
        if props.transmitFailed:
            return finish(plan, tr, State.FAILED, reason, outputs=result, error=reason)
        plan._log(
            "WARN",
            f"{tr.task_id}: {reason}; transmitFailed is false, so this task succeeds",
            tr,
        )
    warned = props.transmitFailed and any(c["state"] == State.WARNING for c in children)
    return finish(plan, tr, State.WARNING if warned else State.SUCCESS, outputs=result)


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
        revision = _revision(plan, props)
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
        save_outputs(tr, {**tr.outputs, "replaced": replaced})
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


FLOWABLES = {SUBFLOW: subflow, FOR_EACH_ITEM: for_each_item}


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
