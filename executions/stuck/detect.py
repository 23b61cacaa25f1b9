"""Stuck executions: the one function that decides, for every interface.

An execution is *stuck* when it is not terminal and nothing alive moves it:

- **orphaned**: a task run is RUNNING on a worker that stopped heartbeating
  (declared dead, or silent past the liveness timeout);
- **stalled**: no progress (state change, log line) for the threshold and
  nothing it legitimately waits for;
- **lost**: created or queued, and nobody picked it up within the threshold.

Everything else that matches the filters is *spared*, with the reason: a
task running on a live worker (whatever its age), paused, a retry or a
sleep scheduled for later, queued behind a concurrency limit, waiting on a
live child execution, or recent progress.

``detect`` reads the whole candidate set in a handful of queries (candidates,
their in-flight task runs, live descendants, concurrency-slot holders) and
judges in memory, so a preview over 100,000 active executions stays cheap.
The web page, the CLI, the REST API, the confirm step and the automatic
sweep all call it; the confirm calls it again under row locks.

Over 500 lines on purpose: the rules and the queries that feed them are one
decision; split, a rule and the query it depends on would drift apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, F, FloatField, Func, Q
from django.utils import timezone

from accounts import roles
from executions.heartbeats import liveness_timeout, unreported
from executions.models import ACTIVE, Execution, State, TaskRun, Worker, WorkerState

STUCK_KINDS = ("orphaned", "stalled", "lost")
SPARED_KINDS = (
    "running",
    "paused",
    "scheduled",
    "queued",
    "waiting-child",
    "stopping",
    "recent",
)
# Descendant generations read to judge "waiting on a live child".
MAX_DEPTH = 20
# Plain strings: compared 100,000 times per detection.
CREATED, QUEUED, PAUSED, KILLING, RESTARTED = (
    str(State.CREATED),
    str(State.QUEUED),
    str(State.PAUSED),
    str(State.KILLING),
    str(State.RESTARTED),
)


@dataclass(slots=True)
class Verdict:
    id: int
    namespace: str
    flow_id: str
    state: str
    # Epoch seconds: the detection reads timestamps as numbers (parsing 300,000
    # datetimes costs more than the queries themselves).
    created_ts: float
    progress_ts: float
    stuck: bool
    kind: str
    # The reason, or a function that writes it: most spared rows are only
    # counted, so their sentences are written when someone reads them.
    why: Any
    worker: str = ""
    permitted: bool = True

    @property
    def reason(self) -> str:
        if callable(self.why):
            self.why = self.why()
        return self.why

    @property
    def flow(self) -> str:
        return f"{self.namespace}.{self.flow_id}"

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.created_ts, UTC)

    @property
    def progress_at(self) -> datetime:
        return datetime.fromtimestamp(self.progress_ts, UTC)

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or timezone.now()) - self.created_at

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["created_ts"], data["progress_ts"], data["why"]
        data["reason"] = self.reason
        data["created_at"] = self.created_at.isoformat()
        data["progress_at"] = self.progress_at.isoformat()
        return data


@dataclass
class Detection:
    older_than_minutes: int
    now: datetime
    stuck: list[Verdict] = field(default_factory=list)
    spared: list[Verdict] = field(default_factory=list)
    # Stuck, visible to the user, but outside their operator namespaces.
    forbidden: list[Verdict] = field(default_factory=list)

    @property
    def by_id(self) -> dict[int, Verdict]:
        return {v.id: v for v in (*self.stuck, *self.spared, *self.forbidden)}


def _ago(moment: float, now: float) -> str:
    seconds = max(int(now - moment), 0)
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _local(epoch: float) -> datetime:
    return timezone.localtime(datetime.fromtimestamp(epoch, UTC))


def candidates(
    *,
    older_than_minutes: int,
    min_age_minutes: int | None = None,
    namespace: str = "",
    flow: str = "",
    exclude_namespaces: tuple[str, ...] = (),
    ids: list[int] | None = None,
    user=None,
    now: datetime | None = None,
):
    """The executions ``detect`` judges: not terminal, older than the
    threshold, inside the filters and the user's visible namespaces."""
    now = now or timezone.now()
    if min_age_minutes is None:
        min_age_minutes = older_than_minutes
    qs = (
        Execution.objects.filter(
            state__in=sorted(ACTIVE),
            created_at__lte=now - timedelta(minutes=min_age_minutes),
        )
        # Waiting for its scheduleDate is not stuck; once the date has passed
        # by the threshold without a start, it is (lost).
        .exclude(
            state=State.CREATED,
            scheduled_at__gt=now - timedelta(minutes=older_than_minutes),
        )
    )
    if namespace:
        qs = qs.in_namespace(namespace)
    for prefix in exclude_namespaces:
        qs = qs.exclude(Q(namespace=prefix) | Q(namespace__startswith=prefix + "."))
    if flow:
        qs = qs.filter(flow_id=flow)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    if user is not None:
        qs = qs.filter(roles.namespace_q(user, roles.VIEWER))
    return qs


def _epoch(name: str):
    """``name`` as epoch seconds: computed by PostgreSQL (a float parses far
    faster than a timestamp); converted in Python on SQLite."""
    if connection.vendor == "postgresql":
        return Func(
            F(name),
            template="EXTRACT(EPOCH FROM %(expressions)s)::float8",
            output_field=FloatField(),
        )
    return F(name)


def _ts(value):
    return value.timestamp() if isinstance(value, datetime) else value


_ROW = ("pk", "namespace", "flow_id", "state", "created_at", "progress_at", "parent_id")
_TASKRUN = (
    "pk",
    "started_at",
    "execution_id",
    "state",
    "task_id",
    "attempt",
    "created_at",
    "scheduled_at",
    "worker_id",
    "worker__name",
    "worker__state",
    "worker__last_heartbeat_at",
    "worker__dead_at",
)
_TIMES = {
    "started_at",
    "created_at",
    "progress_at",
    "scheduled_at",
    "worker__last_heartbeat_at",
    "worker__dead_at",
}


def _fetch(qs, fields: tuple[str, ...]) -> list[tuple]:
    """Rows of ``fields``, timestamps as epoch seconds. On PostgreSQL the
    query runs on a plain psycopg cursor: for 100,000 rows Django's per-value
    converters and text parsing cost more than the query itself."""
    qs = qs.order_by().values_list(*(_epoch(f) if f in _TIMES else f for f in fields))
    # (When queries are being logged, as in tests counting them, go through
    # Django's cursor so that they are seen.)
    if connection.vendor == "postgresql" and not connection.queries_logged:
        import psycopg

        try:
            sql, params = qs.query.sql_with_params()
        except EmptyResultSet:
            # A filter that can match nothing (a user with no role sees no
            # namespace): Django answers [] without asking the database.
            return []
        connection.ensure_connection()
        # Binary results on the same session (and transaction): numbers
        # arrive without text parsing, a third of the CPU of Django's cursor.
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params, binary=True)
            return cursor.fetchall()
    return [tuple(_ts(v) for v in row) for row in qs]


def detect(
    *,
    older_than_minutes: int = 5,
    min_age_minutes: int | None = None,
    namespace: str = "",
    flow: str = "",
    exclude_namespaces: tuple[str, ...] = (),
    ids: list[int] | None = None,
    user=None,
    now: datetime | None = None,
) -> Detection:
    """Judge every candidate execution: stuck (with why) or spared (with why).

    ``user`` limits the candidates to namespaces they may view, and moves
    stuck executions outside their operator namespaces to ``forbidden``.
    ``min_age_minutes`` (default: the threshold) is the minimum age.
    """
    now = now or timezone.now()
    now_s = now.timestamp()
    cutoff = now_s - older_than_minutes * 60
    qs = candidates(
        older_than_minutes=older_than_minutes,
        min_age_minutes=min_age_minutes,
        namespace=namespace,
        flow=flow,
        exclude_namespaces=exclude_namespaces,
        ids=ids,
        user=user,
        now=now,
    )
    rows = {r[0]: r for r in _fetch(qs, _ROW)}
    result = Detection(older_than_minutes=older_than_minutes, now=now)
    if not rows:
        return result

    # Live descendants (children of candidates, their children, ...): a parent
    # waiting on a child that is alive is spared. All active executions that
    # have a parent come in one query (a partial index keeps it small).
    children: dict[int, list[int]] = {}
    with_parent = {
        r[0]: r
        for r in _fetch(
            Execution.objects.filter(parent_id__isnull=False, state__in=sorted(ACTIVE)),
            _ROW,
        )
    }
    for r in with_parent.values():
        children.setdefault(r[6], []).append(r[0])
    extra: dict[int, tuple] = {}
    frontier = [pk for pk in rows if pk in children]
    for _ in range(MAX_DEPTH):
        nxt = []
        for parent in frontier:
            for child in children[parent]:
                if child not in rows and child not in extra:
                    extra[child] = with_parent[child]
                    nxt.append(child)
        frontier = [pk for pk in nxt if pk in children]
        if not frontier:
            break

    # In-flight task runs (waiting or running, not flowable) with their worker.
    # For a large candidate set, reading every in-flight task run (a partial
    # index) beats joining back to the candidates.
    timeout_at = now_s - liveness_timeout().total_seconds()
    inflight = TaskRun.objects.filter(
        state__in=[State.CREATED, State.RUNNING], flowable=False
    )
    wanted = rows.keys() | extra.keys()
    if len(wanted) <= 5000:
        inflight = inflight.filter(execution_id__in=sorted(wanted))
    running: dict[int, list[tuple]] = {}
    waiting: dict[int, list[tuple]] = {}
    # What each live worker said it runs at its last beat (a few rows).
    reports = {
        pk: set(ids) if ids is not None else None
        for pk, ids in Worker.objects.filter(state=WorkerState.ALIVE).values_list(
            "pk", "running"
        )
    }
    for (
        tr_id,
        started_at,
        ex_id,
        state,
        task_id,
        attempt,
        created_at,
        scheduled_at,
        worker_id,
        w_name,
        w_state,
        w_beat,
        w_dead,
    ) in _fetch(inflight, _TASKRUN):
        if ex_id not in wanted:
            continue
        if state == State.RUNNING:
            alive = (
                worker_id is not None
                and w_state == WorkerState.ALIVE
                and w_beat is not None
                and w_beat >= timeout_at
            )
            if alive and unreported(tr_id, started_at, reports.get(worker_id), w_beat):
                w_state = "unreported"
                alive = False
            running.setdefault(ex_id, []).append(
                (alive, task_id, w_name or "", w_state, w_beat, w_dead)
            )
        else:
            due = max(created_at, scheduled_at) if scheduled_at else created_at
            waiting.setdefault(ex_id, []).append((due, task_id, attempt, scheduled_at))

    # Flows with an execution holding a concurrency slot (anything active but
    # QUEUED): their QUEUED executions are legitimately waiting.
    queued_flows = {
        (r[1], r[2]) for r in (*rows.values(), *extra.values()) if r[3] == State.QUEUED
    }
    holders: dict[tuple[str, str], int] = {}
    if queued_flows:
        flow_q = Q(pk__in=[])
        for ns, fid in queued_flows:
            flow_q |= Q(namespace=ns, flow_id=fid)
        for ns, fid, count in (
            Execution.objects.filter(flow_q, state__in=sorted(ACTIVE - {State.QUEUED}))
            .order_by()
            .values("namespace", "flow_id")
            .annotate(n=Count("pk"))
            .values_list("namespace", "flow_id", "n")
        ):
            holders[(ns, fid)] = count

    all_rows = {**extra, **rows}
    memo: dict[int, Verdict] = {}

    def judge(pk: int, depth: int = 0) -> Verdict:
        v = memo.get(pk)
        if v is None:
            stuck, kind, why, worker = _judge(pk, depth)
            _, ns, fid, state, created_at, progress_at, _parent = all_rows[pk]
            v = memo[pk] = Verdict(
                pk, ns, fid, state, created_at, progress_at, stuck, kind, why, worker
            )
        return v

    def _judge(pk: int, depth: int) -> tuple[bool, str, Any, str]:
        _, ns, fid, state, created_at, progress_at, _parent = all_rows[pk]
        runs = running.get(pk)
        if runs:
            dead = [r for r in runs if not r[0]]
            if dead:
                _, task_id, w_name, w_state, w_beat, w_dead = dead[0]
                if not w_name:
                    return (
                        True,
                        "orphaned",
                        f"task '{task_id}' is RUNNING but its worker is gone",
                        "",
                    )
                if w_state == WorkerState.DEAD:
                    since = (
                        f"declared dead {_ago(w_dead, now_s)}"
                        if w_dead
                        else "declared dead"
                    )
                elif w_state == WorkerState.STOPPED:
                    since = "stopped"
                elif w_state == "unreported":
                    since = "which is alive but no longer reports it"
                else:
                    since = f"last heartbeat {_ago(w_beat, now_s)}"
                return (
                    True,
                    "orphaned",
                    f"task '{task_id}' was running on worker {w_name}, {since}",
                    w_name,
                )
            _, task_id, w_name, _, w_beat, _ = runs[0]
            return (
                False,
                "running",
                lambda: (
                    f"task '{task_id}' running on live worker "
                    f"{w_name} (heartbeat {_ago(w_beat, now_s)})"
                ),
                w_name,
            )
        if state == KILLING:
            if progress_at < min(cutoff, now_s - settings.ORCHESTRA_KILL_GRACE_SECONDS):
                return (
                    True,
                    "stalled",
                    f"stop requested {_ago(progress_at, now_s)} and never confirmed",
                    "",
                )
            return (False, "stopping", "being stopped; ends within the kill grace", "")
        if state == PAUSED:
            return (
                False,
                "paused",
                lambda: f"paused {_ago(progress_at, now_s)}, waiting to be resumed",
                "",
            )
        if state == QUEUED:
            count = holders.get((ns, fid), 0)
            if count:
                return (
                    False,
                    "queued",
                    lambda: (
                        f"queued behind the flow's concurrency limit ({count} active)"
                    ),
                    "",
                )
            if progress_at < cutoff:
                return (
                    True,
                    "lost",
                    f"queued {_ago(progress_at, now_s)} and no execution "
                    "of the flow holds a concurrency slot",
                    "",
                )
            return (False, "queued", lambda: f"queued {_ago(progress_at, now_s)}", "")
        kids = children.get(pk)
        if kids:
            stuck_child = None
            for child in kids:
                if depth >= MAX_DEPTH or child not in all_rows:
                    continue
                cv = judge(child, depth + 1)
                if not cv.stuck:
                    return (
                        False,
                        "waiting-child",
                        lambda cv=cv: (
                            f"waiting on child execution #{cv.id} ({cv.reason})"
                        ),
                        "",
                    )
                stuck_child = stuck_child or cv
            if stuck_child is not None:
                return (
                    True,
                    stuck_child.kind,
                    f"waiting on child execution "
                    f"#{stuck_child.id}, which is stuck: {stuck_child.reason}",
                    stuck_child.worker,
                )
        waits = waiting.get(pk)
        if waits:
            due, task_id, attempt, _scheduled = min(waits)
            if due > now_s:
                what = (
                    f"attempt {attempt} of '{task_id}'"
                    if attempt > 1
                    else f"'{task_id}'"
                )
                return (
                    False,
                    "scheduled",
                    lambda: f"{what} scheduled for {_local(due):%Y-%m-%d %H:%M:%S}",
                    "",
                )
            if due < cutoff:
                return (
                    True,
                    "lost",
                    f"task '{task_id}' waiting for a worker since "
                    f"{_ago(due, now_s)}; no worker picked it up",
                    "",
                )
            return (
                False,
                "recent",
                lambda: f"task '{task_id}' queued {_ago(due, now_s)}",
                "",
            )
        if progress_at < cutoff:
            if state == CREATED or state == RESTARTED:
                return (
                    True,
                    "lost",
                    f"{state.lower()} {_ago(progress_at, now_s)} and never started",
                    "",
                )
            return (
                True,
                "stalled",
                f"no progress since {_ago(progress_at, now_s)}; no task "
                "running or waiting",
                "",
            )
        return (False, "recent", lambda: f"progress {_ago(progress_at, now_s)}", "")

    operator_ok: dict[str, bool] = {}
    for pk in sorted(rows):
        v = judge(pk)
        if v.stuck and user is not None:
            if v.namespace not in operator_ok:
                operator_ok[v.namespace] = roles.has_role(
                    user, v.namespace, roles.OPERATOR
                )
            v.permitted = operator_ok[v.namespace]
        if not v.stuck:
            result.spared.append(v)
        elif v.permitted:
            result.stuck.append(v)
        else:
            result.forbidden.append(v)
    return result


def stuck_count(user=None, older_than_minutes: int = 5, cached: bool = True) -> int:
    """How many executions the stuck page would list now (for the overview).

    Cached for 30 seconds per user scope, so a busy dashboard does not run
    the detection on every request.
    """
    from django.core.cache import cache

    if user is not None:
        prefixes = roles.prefixes(user, roles.VIEWER)
        scope = "*" if prefixes is None else ",".join(prefixes)
    else:
        scope = "*"
    key = (
        "stuck-count:"
        + hashlib.sha1(f"{older_than_minutes}:{scope}".encode()).hexdigest()
    )
    value = cache.get(key) if cached else None
    if value is None:
        found = detect(older_than_minutes=older_than_minutes, user=user)
        value = len(found.stuck) + len(found.forbidden)
        cache.set(key, value, 30)
    return value
