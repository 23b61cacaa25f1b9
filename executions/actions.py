"""Everything that creates or changes executions. Web, API, CLI and sweeps
all call these functions; each records who did it and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from executions import states, storage
from executions.engine import dispatch
from executions.models import TERMINAL, Cause, Execution, State, TaskRun
from flows.models import Flow, FlowRevision
from flows.spec import FlowSpec
from flows.spec.inputs import InputError, resolve_inputs


class ActionError(ValueError):
    """A request that cannot be carried out; the message says why."""


class FlowNotFound(ActionError):
    pass


def get_flow(namespace: str, flow_id: str) -> Flow:
    flow = Flow.objects.filter(
        namespace=namespace, flow_id=flow_id, deleted=False
    ).first()
    if flow is None:
        known = list(
            Flow.objects.filter(namespace=namespace, deleted=False).values_list(
                "flow_id", flat=True
            )
        )
        hint = (
            f" Flows in {namespace}: {', '.join(known)}"
            if known
            else (f" No flows in namespace '{namespace}'.")
        )
        raise FlowNotFound(f"flow {namespace}.{flow_id} does not exist.{hint}")
    return flow


@transaction.atomic
def create_execution(
    revision: FlowRevision | None,
    *,
    inputs: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    trigger: dict[str, Any] | None = None,
    cause: str = Cause.API,
    actor: str = "",
    spec: FlowSpec | None = None,
    source: str = "",
    parent: Execution | None = None,
    parent_taskrun_id: int | None = None,
    start: bool = True,
    scheduled_at: datetime | None = None,
    user=None,
) -> Execution:
    """Validate inputs and create an execution (CREATED), then start it —
    at ``scheduled_at`` when that is in the future.

    Raises InputError (flows.spec.inputs) listing every bad input; nothing is
    stored then. ``revision`` is None only for ``flows test`` runs, which pass
    their ``spec`` and ``source``.
    """
    if revision is not None:
        spec = revision.spec
    assert spec is not None
    if spec.disabled and revision is not None:
        raise ActionError(f"flow {spec.namespace}.{spec.id} is disabled")
    values = resolve_inputs(spec.inputs, inputs or {})
    # ``user``: the person starting it (API, UI); stored files they name must
    # be theirs to see.
    problems = storage.check_given_files(
        spec.namespace, values, user=user, parent=parent, trigger=trigger
    )
    if problems:
        raise InputError(problems)
    all_labels = {**spec.labels, **(labels or {})}
    trigger = trigger or {}
    execution = Execution.objects.create(
        namespace=spec.namespace,
        flow_id=spec.id,
        flow_revision=revision,
        revision=revision.revision if revision else 0,
        source="" if revision else source,
        inputs=values,
        labels=all_labels,
        trigger=trigger,
        trigger_id=str(trigger.get("id", "")),
        parent=parent,
        parent_taskrun_id=parent_taskrun_id,
        scheduled_at=scheduled_at,
    )
    how = trigger.get("type") or cause
    reason = f"created by {how}"
    if scheduled_at is not None:
        reason += f", scheduled for {scheduled_at.isoformat()}"
    states.record_created(execution, cause=cause, actor=actor, reason=reason)
    from executions.signals import execution_created

    execution_created.send(sender=Execution, execution=execution, spec=spec)
    if start:
        dispatch.get().advance(execution.pk, countdown=_until(scheduled_at))
    return execution


def _until(when: datetime | None) -> float | None:
    """Seconds from now to ``when`` (None when it is not in the future)."""
    if when is None:
        return None
    seconds = (when - timezone.now()).total_seconds()
    return seconds if seconds > 0 else None


def execute_flow(namespace: str, flow_id: str, **kwargs: Any) -> Execution:
    flow = get_flow(namespace, flow_id)
    return create_execution(flow.latest, **kwargs)


@transaction.atomic
def stop_execution(
    execution_id: int,
    *,
    final: str = State.KILLED,
    cause: str,
    actor: str = "",
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> Execution:
    """Kill (final=KILLED) or cancel (final=CANCELLED) an execution.

    Nothing new starts; queued task runs are revoked; running ones are told
    to stop and the execution ends once they have (or after the grace period,
    see liveness.force_killing). Child executions are stopped too.
    """
    execution = Execution.objects.select_for_update().get(pk=execution_id)
    if execution.state in TERMINAL:
        raise ActionError(f"execution {execution_id} already ended ({execution.state})")
    if execution.state == State.KILLING:
        return execution
    waiting = list(
        TaskRun.objects.filter(
            execution=execution, state__in=[State.CREATED, State.PAUSED]
        )
    )
    running = TaskRun.objects.filter(
        execution=execution, state=State.RUNNING, flowable=False
    ).exists()
    for tr in waiting:
        states.transition_taskrun(
            tr,
            State.KILLED,
            cause=cause,
            actor=actor,
            reason=reason or "execution stopped",
        )
    dispatch.get().revoke([tr.celery_id for tr in waiting])
    if running:
        states.transition(
            execution,
            State.KILLING,
            cause=cause,
            actor=actor,
            reason=reason,
            details=details,
            fields={"stop_state": final},
        )
    else:
        for tr in TaskRun.objects.filter(execution=execution, state=State.RUNNING):
            states.transition_taskrun(
                tr, State.KILLED, cause=cause, actor=actor, reason="execution stopped"
            )
        states.transition(
            execution,
            final,
            cause=cause,
            actor=actor,
            reason=reason,
            details=details,
            fields={"stop_state": final},
        )
    for child in Execution.objects.filter(parent=execution).exclude(state__in=TERMINAL):
        if child.state != State.KILLING:
            stop_execution(
                child.pk,
                final=final,
                cause=cause,
                actor=actor,
                reason=f"parent execution {execution.pk} stopped",
            )
    return execution


def kill(
    execution_id: int, *, cause: str, actor: str = "", reason: str = ""
) -> Execution:
    return stop_execution(
        execution_id,
        final=State.KILLED,
        cause=cause,
        actor=actor,
        reason=reason or "killed",
    )


@transaction.atomic
def set_labels(
    execution_id: int,
    labels: dict[str, str],
    *,
    cause: str,
    actor: str = "",
    reason: str = "",
) -> Execution:
    execution = Execution.objects.select_for_update().get(pk=execution_id)
    # Not a state change, but an action on the execution: its history row
    # (same state both sides) keeps who changed which labels.
    from executions.models import StateChange

    shown = ", ".join(f"{k}={v}" for k, v in labels.items())
    StateChange.objects.create(
        execution_id=execution.pk,
        from_state=execution.state,
        to_state=execution.state,
        cause=cause,
        actor=actor,
        reason=reason or f"labels set: {shown}",
        details={"labels": labels},
    )

    execution.labels = {**(execution.labels or {}), **labels}
    execution.progress_at = timezone.now()
    execution.save(update_fields=["labels", "progress_at"])
    return execution


@transaction.atomic
def delete_execution(execution_id: int, *, actor: str, reason: str = "") -> int:
    """Delete an ended execution with its task runs, logs and history.

    A running execution must be killed first, so nothing keeps working on a
    row that no longer exists. Returns the id deleted.
    """
    execution = Execution.objects.select_for_update().get(pk=execution_id)
    if execution.state not in TERMINAL:
        raise ActionError(
            f"execution {execution_id} is {execution.state}; kill it before deleting it"
        )
    import logging

    logging.getLogger("orchestra.audit").info(
        "execution %s (%s.%s, %s) deleted by %s: %s",
        execution.pk,
        execution.namespace,
        execution.flow_id,
        execution.state,
        actor,
        reason or "no reason given",
    )
    execution.delete()
    return execution_id


# --- resume, restart, replay -----------------------------------------------------
def _spec_of(execution: Execution):
    """The flow definition the execution ran, or an ActionError saying why not."""
    from flows.spec import FlowInvalid

    try:
        return execution.spec
    except FlowInvalid as exc:
        raise ActionError(
            f"execution {execution.pk} has no usable flow definition ({exc}); "
            "execute the flow again instead"
        ) from None


def _locked(execution_id: int) -> Execution:
    execution = (
        Execution.objects.select_for_update(of=("self",))
        .select_related("flow_revision")
        .filter(pk=execution_id)
        .first()
    )
    if execution is None:
        raise ActionError(f"execution {execution_id} does not exist")
    return execution


@transaction.atomic
def resume(
    execution_id: int,
    *,
    inputs: dict[str, Any] | None = None,
    actor: str,
    reason: str = "",
    cause: str = Cause.USER,
) -> Execution:
    """Resume a PAUSED execution; ``inputs`` answer the Pause tasks' ``onResume``.

    Raises InputError (every bad input) or ActionError; nothing changes then.
    The values become ``outputs.<pause task>.onResume``.
    """
    from flows.spec.inputs import InputError

    execution = _locked(execution_id)
    if execution.state != State.PAUSED:
        raise ActionError(
            f"execution {execution_id} is {execution.state}, not PAUSED: "
            "there is nothing to resume"
        )
    supplied = dict(inputs or {})
    paused = list(TaskRun.objects.filter(execution=execution, state=State.PAUSED))
    spec = _spec_of(execution)
    answers: dict[int, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    declared: set[str] = set()
    for tr in paused:
        node = spec.task(tr.task_id)
        decls = (getattr(node.props, "onResume", None) or []) if node else []
        names = {d["id"] for d in decls}
        declared |= names
        try:
            answers[tr.pk] = resolve_inputs(
                decls, {k: v for k, v in supplied.items() if k in names}
            )
        except InputError as exc:
            errors.update(exc.errors)
    for name in supplied:
        if name not in declared:
            hint = ", ".join(sorted(declared)) or "none"
            errors[name] = (
                f"the paused task does not ask for this input (onResume: {hint})"
            )
    if errors:
        raise InputError(errors)
    why = reason or "resumed"
    for tr in paused:
        fields = {"scheduled_at": None}
        if answers.get(tr.pk):
            fields["outputs"] = {**(tr.outputs or {}), "onResume": answers[tr.pk]}
        states.transition_taskrun(
            tr, State.SUCCESS, cause=cause, actor=actor, reason=why, fields=fields
        )
    states.transition(
        execution,
        State.RUNNING,
        cause=cause,
        actor=actor,
        reason=why,
        details={"inputs": sorted(supplied)} if supplied else None,
    )
    dispatch.get().advance(execution.pk)
    return execution


RESTARTABLE = (State.FAILED, State.KILLED, State.CANCELLED)


def _latest(taskruns: list[TaskRun]) -> list[TaskRun]:
    """The latest attempt of each (task, parent, value), in creation order."""
    latest: dict[tuple, TaskRun] = {}
    for tr in taskruns:
        key = (tr.task_id, tr.parent_id, tr.value)
        if key not in latest or (tr.attempt, tr.pk) > (
            latest[key].attempt,
            latest[key].pk,
        ):
            latest[key] = tr
    return sorted(latest.values(), key=lambda t: t.pk)


@transaction.atomic
def restart(
    execution_id: int, *, actor: str, reason: str = "", cause: str = Cause.USER
) -> Execution:
    """Re-run the failed branch of an ended execution, in the same execution.

    Failed (or killed) task runs and their failed parents are marked
    RESTARTED; the executor gives each a new attempt while successful task
    runs keep their outputs. The errors and finally branches run again as
    the new outcome requires. Execution.attempt counts the restarts.
    """
    execution = _locked(execution_id)
    if execution.state not in RESTARTABLE:
        raise ActionError(
            f"execution {execution_id} is {execution.state}; only FAILED, KILLED or "
            "CANCELLED executions can be restarted (use replay to run it again)"
        )
    spec = _spec_of(execution)
    # The same admission as a new execution: at the flow's limit a restart
    # waits in QUEUED for a slot. CANCEL and FAIL would only end it again at
    # once, rewriting its outcome, so the restart is refused instead.
    from executions import concurrency

    over = concurrency.over_limit(execution, spec)
    if over is not None and over.state != State.QUEUED:
        raise ActionError(
            f"execution {execution_id} cannot restart now: {over.reason}; "
            "restart it when a slot is free"
        )
    latest = _latest(list(execution.taskruns.all()))
    children: dict[int | None, list[TaskRun]] = {}
    for tr in latest:
        children.setdefault(tr.parent_id, []).append(tr)
    handlers = {n.id for n in (*spec.errors, *spec.finally_)}
    chosen: list[TaskRun] = []

    def failed_branch(tr: TaskRun) -> None:
        if tr.state in RESTARTABLE:
            chosen.append(tr)
            for child in children.get(tr.pk, []):
                failed_branch(child)

    def whole(tr: TaskRun) -> None:
        if (
            tr.state in states.TASKRUN_ALLOWED
            and State.RESTARTED in states.TASKRUN_ALLOWED[tr.state]
        ):
            chosen.append(tr)
        for child in children.get(tr.pk, []):
            whole(child)

    for root in children.get(None, []):
        (whole if root.task_id in handlers else failed_branch)(root)
    attempt = execution.attempt + 1
    why = reason or f"restarted (attempt {attempt})"
    for tr in chosen:
        states.transition_taskrun(
            tr, State.RESTARTED, cause=cause, actor=actor, reason=why
        )
    states.transition(
        execution,
        State.RESTARTED,
        cause=cause,
        actor=actor,
        reason=why,
        details={"attempt": attempt, "taskRuns": [tr.pk for tr in chosen]},
        fields={"attempt": attempt, "error": "", "stop_state": ""},
    )
    if over is not None:
        concurrency.hold_back(execution, over)  # started by release() later
    else:
        dispatch.get().advance(execution.pk)
    return execution


def _preorder(nodes) -> dict[str, int]:
    order: dict[str, int] = {}
    for node in nodes:
        for sub in node.walk():
            order[sub.id] = len(order)
    return order


def _ancestors(nodes, task_id: str, chain: tuple = ()) -> tuple[str, ...] | None:
    for node in nodes:
        if node.id == task_id:
            return chain
        for branch in (*node.children.values(), *node.case_children.values()):
            found = _ancestors(branch, task_id, (*chain, node.id))
            if found is not None:
                return found
    return None


@transaction.atomic
def replay(
    execution_id: int,
    *,
    from_task: str | None = None,
    actor: str,
    reason: str = "",
    cause: str = Cause.USER,
) -> Execution:
    """Run an ended execution again as a new execution linked to it
    (``original``), with the same flow revision, inputs and labels.

    With ``from_task``, the task runs before that task (in flow order) are
    copied with their state and outputs, and the run starts from there.
    Returns the new execution.
    """
    from executions.models import StateChange

    original = (
        Execution.objects.select_related("flow_revision")
        .filter(pk=execution_id)
        .first()
    )
    if original is None:
        raise ActionError(f"execution {execution_id} does not exist")
    if original.state not in TERMINAL:
        raise ActionError(
            f"execution {execution_id} is {original.state}; replay works on "
            "ended executions (kill it first)"
        )
    spec = _spec_of(original)
    copies: list[TaskRun] = []
    running_ids: set[str] = set()
    if from_task:
        order = _preorder(spec.tasks)
        if from_task not in order:
            where = "its errors/finally branch" if spec.task(from_task) else "the flow"
            known = ", ".join(order)
            raise ActionError(
                f"task '{from_task}' is not among the tasks of {where} "
                f"(revision {original.revision}); replay from one of: {known}"
            )
        latest = _latest(list(original.taskruns.all()))
        if not any(tr.task_id == from_task for tr in latest):
            raise ActionError(
                f"task '{from_task}' never ran in execution {execution_id}; "
                "replay from a task that ran"
            )
        running_ids = set(_ancestors(spec.tasks, from_task) or ())
        limit = order[from_task]
        kept: set[int] = set()
        for tr in latest:
            if order.get(tr.task_id, limit) >= limit:
                continue
            if tr.parent_id is not None and tr.parent_id not in kept:
                continue
            if tr.task_id not in running_ids and tr.state not in TERMINAL:
                continue
            kept.add(tr.pk)
            copies.append(tr)
    execution = Execution.objects.create(
        namespace=original.namespace,
        flow_id=original.flow_id,
        flow_revision=original.flow_revision,
        revision=original.revision,
        source=original.source,
        inputs=original.inputs,
        labels=original.labels,
        variables=original.variables,
        trigger=original.trigger,
        trigger_id=original.trigger_id,
        original=original,
    )
    what = f"replay of execution {original.pk}" + (
        f" from task '{from_task}'" if from_task else ""
    )
    states.record_created(
        execution,
        cause=cause,
        actor=actor,
        reason=f"{what}: {reason}" if reason else what,
        details={"original": original.pk, "fromTask": from_task},
    )
    # Copy level by level so each row's parent already has its new id.
    new_ids: dict[int, int] = {}
    depth: dict[int, int] = {}
    levels: dict[int, list[TaskRun]] = {}
    for tr in copies:
        depth[tr.pk] = depth[tr.parent_id] + 1 if tr.parent_id else 0
        levels.setdefault(depth[tr.pk], []).append(tr)
    history = []
    for level in sorted(levels):
        olds = levels[level]
        rows = TaskRun.objects.bulk_create(
            [
                TaskRun(
                    execution=execution,
                    task_id=tr.task_id,
                    parent_id=new_ids[tr.parent_id] if tr.parent_id else None,
                    value=tr.value,
                    attempt=tr.attempt,
                    flowable=tr.flowable,
                    outputs=tr.outputs,
                    state=State.RUNNING if tr.task_id in running_ids else tr.state,
                    error="" if tr.task_id in running_ids else tr.error,
                    created_at=tr.created_at,
                    started_at=tr.started_at,
                    ended_at=None if tr.task_id in running_ids else tr.ended_at,
                )
                for tr in olds
            ]
        )
        for old, new in zip(olds, rows, strict=True):
            new_ids[old.pk] = new.pk
            history.append(
                StateChange(
                    execution=execution,
                    taskrun=new,
                    from_state="",
                    to_state=new.state,
                    cause=cause,
                    actor=actor,
                    reason=f"copied from task run {old.pk} of execution {original.pk}",
                )
            )
    StateChange.objects.bulk_create(history)
    from executions.signals import execution_created

    execution_created.send(sender=Execution, execution=execution, spec=spec)
    dispatch.get().advance(execution.pk)
    return execution
