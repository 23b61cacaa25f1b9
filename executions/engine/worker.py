"""The worker: claims a task run, runs its task type, records the outcome.

After finishing, the worker advances the execution itself under the same row
lock the executor uses and keeps one of the next runnable task runs for
itself, instead of a round trip through the broker (the other ones are sent
to the queue for any worker). bench/engine.py measures the difference.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

from celery import signals
from django.db import Error as DatabaseError
from django.db import connection, transaction
from django.utils import timezone

from executions import dispatch
from executions.engine import outbox
from executions.engine.context import EngineContext, expression_context
from executions.engine.executor import advance_and_dispatch, advance_and_keep
from executions.engine.flowable import allowed_state
from executions.engine.lease import current_worker, hold, lease_lost, release
from executions.engine.props import render_task_props
from executions.engine.retry import schedule_retry, will_retry
from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.models import (
    TERMINAL,
    Cause,
    Execution,
    LogEntry,
    State,
    TaskRun,
    Worker,
)
from flows.expressions import ExpressionError, _json_default
from flows.tasks.context import TaskFailed, TaskKilled, warn_in_logs
from orchestra.lib.secrets import mask

log = logging.getLogger("orchestra.worker")

# How many task runs one worker call may chain before yielding its slot.
CHAIN_LIMIT = 500


def run_chain(taskrun_id: int) -> int:
    """Run a task run, then keep running the execution's next ones. Returns
    how many task runs this call ran.

    Between two chained task runs there is one transaction: finish the one
    that ran, advance the execution and claim the next one, all under the
    execution's row lock. One commit per task is the floor of the per-task
    overhead (bench/engine.py, docs/benchmarks.md).
    """
    tr = _claim(taskrun_id, current_worker().pk)
    ran = 0
    while tr is not None:
        ran += 1
        tr = run_one(
            tr.pk, claimed=tr, advance_after=True, claim_next=ran < CHAIN_LIMIT
        )
    return ran


def _finish_and_continue(
    tr: TaskRun, node, state: str, outputs: dict, error: str, worker, claim_next: bool
) -> TaskRun | None:
    """Record the outcome, advance the execution and, with ``claim_next``,
    claim the next task run for this worker — in one transaction. Returns the
    claimed task run (RUNNING on this worker), or None."""
    with transaction.atomic():
        _finish(tr, node, state, outputs, error, worker.pk)
        kept = advance_and_keep(tr.execution_id, keep_one=True)
        if kept is None:
            return None
        if not claim_next:
            dispatch.get().run_taskrun(kept.pk)
            return None
        # Just created under the execution's lock, by this transaction: no
        # other process can have claimed it, and the execution is running.
        # Finishing the previous task run touched progress_at a moment ago.
        if machine.transition_taskrun(
            kept,
            State.RUNNING,
            fields={"worker_id": worker.pk},
            touch_execution=False,
            actor=Actor(Cause.WORKER, worker.name),
        ):
            return kept
        dispatch.get().run_taskrun(kept.pk)
        return None


def _claim(taskrun_id: int, worker_id: int) -> TaskRun | None:
    with transaction.atomic():
        tr = (
            TaskRun.objects.select_related("execution__flow_revision")
            .filter(pk=taskrun_id)
            .first()
        )
        if tr is None or tr.state != State.CREATED:
            return None  # already claimed, finished or killed: a duplicate message
        if tr.scheduled_at and tr.scheduled_at > timezone.now() + timedelta(seconds=1):
            # Early delivery (a broker without countdown support): send it again.
            dispatch.get().run_taskrun(tr.pk, eta=tr.scheduled_at)
            return None
        execution = tr.execution
        # The execution's row lock first, as kill, _finish and advance take
        # it: a claim that locked the task run first and then touched the
        # execution could deadlock with a kill arriving at the same moment.
        execution.state = (
            Execution.objects.select_for_update()
            .filter(pk=execution.pk)
            .values_list("state", flat=True)
            .get()
        )
        if execution.state in TERMINAL or execution.state == State.KILLING:
            machine.transition_taskrun(
                tr,
                State.KILLED,
                reason=f"execution is {execution.state}",
                actor=Actor(Cause.WORKER, ""),
            )
            dispatch.get().advance(execution.pk)
            return None
        claimed = machine.transition_taskrun(
            tr,
            State.RUNNING,
            fields={"worker_id": worker_id},
            actor=Actor(Cause.WORKER, _worker_name(worker_id)),
        )
        if claimed:
            hold(tr.pk)
        return tr if claimed else None


def _worker_name(worker_id: int) -> str:
    worker = current_worker()
    if worker.pk == worker_id:
        return worker.name
    return (
        Worker.objects.filter(pk=worker_id).values_list("name", flat=True).first() or ""
    )


def run_one(
    taskrun_id: int,
    claimed: TaskRun | None = None,
    advance_after: bool = False,
    claim_next: bool = False,
) -> int | TaskRun | None:
    """Run one task run if it can be claimed (or run ``claimed``, already
    RUNNING on this worker). Returns its execution id; with ``advance_after``
    the execution is advanced in the same transaction as the outcome and the
    return value is the next task run claimed for this worker (``claim_next``)
    or None. Returns None if nothing ran."""
    worker = current_worker()
    tr = claimed or _claim(taskrun_id, worker.pk)
    if tr is None:
        return None
    execution = tr.execution
    spec = execution.spec
    node = spec.task(tr.task_id)
    # Outputs are read lazily, task by task, when an expression needs them:
    # the cost of a task does not grow with the task runs before it.
    context = expression_context(
        execution, tr, ancestors=getattr(tr, "ancestors", None)
    )
    deadline = None
    timeout_text = ""
    timeout = node.props.timeout if node else None
    if hasattr(timeout, "total_seconds"):
        deadline = time.monotonic() + timeout.total_seconds()
        timeout_text = str(node.raw.get("timeout"))
    ctx = EngineContext(
        execution,
        tr,
        context,
        deadline,
        min_level=node.props.logLevel or "TRACE" if node else "TRACE",
    )
    ctx.timeout_text = timeout_text
    hold(tr.pk)
    state, outputs, error = State.SUCCESS, {}, ""
    try:
        if node is None:
            raise TaskFailed(f"task '{tr.task_id}' is not in the flow revision")
        props = render_task_props(ctx, node)
        # Accepted options that cannot apply here are said at every run too.
        for note in getattr(props, "validation_warnings", list)():
            warn_in_logs(ctx, note)
        result = node.type.run(ctx, props)
        outputs = result or {}
        if ctx.warnings and not node.props.allowWarning:
            state = State.WARNING
    except TaskKilled as exc:
        error = str(exc)
        state = State.FAILED if error.startswith("timed out") else State.KILLED
        ctx.log("ERROR" if state == State.FAILED else "WARN", f"{tr.task_id}: {error}")
    except TaskFailed as exc:
        state, error = State.FAILED, str(exc)
        ctx.log("ERROR", error)
    except ExpressionError as exc:
        state, error = State.FAILED, exc.message
        ctx.log("ERROR", error)
    except Exception as exc:  # noqa: BLE001 — any bug in a task fails that task, not the worker
        log.exception("task %s of execution %s crashed", tr.task_id, execution.pk)
        state, error = State.FAILED, f"{type(exc).__name__}: {exc}"
        ctx.log("ERROR", error)
    try:
        ctx.flush()
    except Exception:  # noqa: BLE001 — kept with the outcome below
        log.exception("could not store logs of task run %s", tr.pk)
    # Secrets never leave the worker in outputs or errors (see orchestra/lib/secrets.py).
    outputs, error = mask(outputs), mask(error)
    fenced = ctx.fenced or lease_lost(tr.worker_id)
    if fenced:
        # Declared dead meanwhile: the task run was resubmitted or failed by
        # liveness, and this outcome must not compete with that decision.
        log.warning("outcome of task run %s not reported: %s", tr.pk, fenced)
        release(tr.pk)
        return None
    try:
        if advance_after:
            kept = _finish_and_continue(
                tr, node, state, outputs, error, worker, claim_next
            )
            if kept is not None:
                hold(kept.pk)
            result: int | TaskRun | None = kept
        else:
            _finish(tr, node, state, outputs, error, worker.pk)
            result = execution.pk
    except DatabaseError:
        # The task ran; only its record failed (the database is away). Keep
        # the outcome and record it when the database answers: the execution
        # must not stay RUNNING because of an outage.
        connection.close()
        outbox.keep(
            {
                "taskrun_id": tr.pk,
                "execution_id": tr.execution_id,
                "worker_id": tr.worker_id,
                "resubmits": tr.resubmits,
                "state": state,
                "outputs": _jsonable(outputs),
                "error": error,
            },
            ctx.unflushed(),
        )
        return None
    release(tr.pk)
    return result


def record_kept(record: dict[str, Any]) -> None:
    """Record an outcome the outbox kept (see ``outbox.py``), then advance
    its execution. Stale records (the task run moved meanwhile) change
    nothing but a log line."""
    tr = TaskRun.objects.filter(pk=record["taskrun_id"]).first()
    if tr is None:
        return
    with transaction.atomic():
        LogEntry.objects.bulk_create(outbox.log_entries(record))
        if tr.state != State.RUNNING:
            tr.state = State.RUNNING  # the conditional finish refuses it
        tr.resubmits = record["resubmits"]
        node = Execution.objects.get(pk=tr.execution_id).spec.task(tr.task_id)
        _finish(
            tr,
            node,
            record["state"],
            record["outputs"],
            record["error"],
            record["worker_id"],
        )
    advance_and_dispatch(tr.execution_id)


def _finish(
    tr: TaskRun, node, state: str, outputs: dict, error: str, worker_id: int
) -> None:
    with transaction.atomic(savepoint=False):
        execution = Execution.objects.select_for_update().get(pk=tr.execution_id)
        retries = (
            state == State.FAILED
            and node is not None
            and execution.state in (State.RUNNING, State.PAUSED)
            and will_retry(tr, node)
        )
        if (
            state == State.SUCCESS
            and tr.attempt > 1
            and node is not None
            and node.props.retry is not None
            and node.props.retry.warningOnRetry is True
        ):
            state = State.WARNING  # Kestra's warningOnRetry: it needed a retry
        if node is not None and not retries:
            # The last attempt of a task allowed to fail ends WARNING (or
            # SUCCESS with allowWarning too), as Kestra's Worker records it.
            state = allowed_state(node, state)
        done = machine.transition_taskrun(
            tr,
            state,
            reason=error,
            fields={"outputs": _jsonable(outputs), "error": error},
            # Resubmitted meanwhile (even to this same worker): not ours.
            only_if={"worker_id": worker_id, "resubmits": tr.resubmits},
            actor=Actor(Cause.WORKER, ""),
        )
        if not done:
            # The liveness sweep or a kill moved this task run meanwhile; its
            # decision stands and this result is dropped.
            LogEntry.objects.create(
                execution_id=tr.execution_id,
                taskrun_id=tr.pk,
                task_id=tr.task_id,
                level="WARN",
                message=f"result of attempt {tr.attempt} dropped: the task run "
                "was already moved by another process",
            )
            return
        # A paused execution still retries the tasks that were already running.
        if retries:
            nxt = schedule_retry(tr, node, error)
            if nxt is not None:
                dispatch.get().run_taskrun(nxt.pk, eta=nxt.scheduled_at)


outbox.use(record_kept)


@signals.worker_ready.connect
def _replay_outbox(**kwargs) -> None:
    outbox.replay_pending()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))
