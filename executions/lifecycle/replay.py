"""Replay: run an ended execution again as a new one, optionally from a task."""

from __future__ import annotations

from django.db import transaction

from executions import dispatch
from executions.lifecycle import machine, rules
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError, spec_of
from executions.lifecycle.restart import latest_attempts
from executions.models import TERMINAL, Execution, State, TaskRun
from executions.signals import execution_created


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
    actor: Actor,
    from_task: str | None = None,
    reason: str = "",
) -> Execution:
    """The new execution is linked to the old one (``original``) and has the
    same flow revision, inputs and labels. With ``from_task``, the task runs
    before that task (in flow order) are copied with their state and
    outputs, and the run starts from there. Returns the new execution.
    """
    original = (
        Execution.objects.select_related("flow_revision")
        .filter(pk=execution_id)
        .first()
    )
    if original is None:
        raise ActionError(f"execution {execution_id} does not exist")
    rules.check("replay", original, actor)
    spec = spec_of(original)
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
        latest = latest_attempts(list(original.taskruns.all()))
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
    machine.record_created(
        execution,
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
                machine.Entry(
                    execution.pk,
                    new.state,
                    taskrun_id=new.pk,
                    reason=f"copied from task run {old.pk} of execution {original.pk}",
                )
            )
    machine.record_history(history, actor=actor)
    execution_created.send(sender=Execution, execution=execution, spec=spec)
    dispatch.get().advance(execution.pk)
    return execution
