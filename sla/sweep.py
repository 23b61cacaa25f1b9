"""The SLA sweep: record misses, apply breach actions, send the digest.

Run every minute by Celery beat (``orchestra.sla_sweep``), by
``orchestra sla check`` and by the django-crontab job. Every step is safe
with several sweeps at once: misses are unique per (rule, execution, level)
or (rule, window), claims are conditional updates, and due deadlines are
locked with SKIP LOCKED on PostgreSQL.
"""

from __future__ import annotations

import logging
import zoneinfo
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime

from croniter import croniter
from django.db import connection, transaction
from django.utils import timezone

from executions.engine.context import expression_context
from executions.lifecycle.actor import Actor
from executions.lifecycle.labels import set_labels
from executions.lifecycle.stop import stop
from executions.models import TERMINAL, Cause, Execution, State
from flows.expressions import ExpressionError, evaluate, truthy
from orchestra.lib.durations import format_duration
from orchestra.lib.labels import format_labels
from sla import digest
from sla.models import (
    Behavior,
    Deadline,
    DeadlineState,
    Kind,
    Level,
    PendingAlert,
    SlaMiss,
    SlaRule,
)

log = logging.getLogger("orchestra.sla")

BATCH = 10000
# The tick's batch: at 10,000 the planner, which estimates most open deadlines
# as due (closed ones are due in the past), sorts every open deadline instead
# of walking the due index (80 ms for nothing due against 0.1 ms; bench/sla.py).
TICK_BATCH = 2000
MAX_BATCHES = 20
MAX_WINDOWS = 100  # cron windows checked per rule and sweep (a long outage catches up)
SUCCESSFUL = (State.SUCCESS, State.WARNING)


@dataclass
class SweepResult:
    misses: int = 0
    assertion_misses: int = 0
    expected_misses: int = 0
    actions: int = 0
    digests_built: int = 0
    emails_sent: int = 0
    emails_failed: int = 0
    skipped: bool = False  # another sweep was running

    def as_dict(self) -> dict[str, int | bool]:
        """camelCase keys, like every JSON the CLI and the API print."""
        return {_camel(key): value for key, value in asdict(self).items()}

    def __str__(self) -> str:
        if self.skipped:
            return "skipped: another SLA sweep is running"
        return (
            f"{self.misses} duration miss(es), {self.assertion_misses} assertion miss(es), "
            f"{self.expected_misses} missed run window(s), {self.actions} action(s) applied, "
            f"{self.emails_sent} email(s) sent, {self.emails_failed} failed"
        )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _recipients(rule_recipients: str | None) -> str:
    # Rules store "a@x, b@y" (see SlaRule.save); misses group by "a@x,b@y".
    return (rule_recipients or "").replace(" ", "")


def _due(now: datetime, kind: str, limit: int, execution_ids=None):
    qs = Deadline.objects.filter(state=DeadlineState.OPEN, kind=kind, due_at__lte=now)
    if execution_ids is not None:
        qs = qs.filter(execution_id__in=execution_ids)
    if connection.vendor == "postgresql":
        # Two sweeps at once take different rows instead of waiting.
        qs = qs.select_for_update(skip_locked=True, of=("self",))
    return qs.order_by("due_at")[:limit]


def record_duration_misses(
    now: datetime, batch: int = BATCH, execution_ids: list[int] | None = None
) -> int:
    """Open deadlines whose time has come (of these executions only, if
    given): one SlaMiss each, then closed."""
    record = (
        _record_batch_postgresql if connection.vendor == "postgresql" else _record_batch
    )
    total = 0
    for _ in range(MAX_BATCHES):
        with transaction.atomic():
            closed = record(now, batch, execution_ids)
        total += closed
        if closed < batch:
            break
    return total


# One statement: lock the due deadlines (SKIP LOCKED: a concurrent sweep takes
# others), close them, insert their misses and queue those with recipients for
# the digest; ON CONFLICT keeps one miss per (execution, key, level) whatever
# happens. Returns how many were closed.
_RECORD_SQL = """
WITH due AS (
    SELECT id FROM sla_deadline
    WHERE state = 'open' AND kind = 'duration' AND due_at <= %(now)s {scope}
    ORDER BY due_at LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), closed AS (
    -- "= ANY(ARRAY(...))", not a join: the planner cannot pick a merge join that
    -- walks the whole primary key of a table of closed deadlines.
    UPDATE sla_deadline d SET state = 'missed' WHERE d.id = ANY(ARRAY(SELECT id FROM due))
    RETURNING d.execution_id, d.rule_id, d.key, d.level, d.threshold, d.behavior, d.labels,
        d.attempt, d.due_at - d.threshold AS started_at
), inserted AS (
    INSERT INTO sla_slamiss (
        rule_id, execution_id, key, kind, level, attempt, namespace, flow_id, threshold,
        duration, started_at, execution_state, detected_at, behavior, labels, action,
        actions_done, recipients)
    SELECT c.rule_id, c.execution_id, c.key, 'duration', c.level, c.attempt, e.namespace,
        e.flow_id, c.threshold, COALESCE(e.ended_at, %(now)s) - c.started_at, c.started_at,
        e.state, %(now)s, c.behavior, c.labels, '',
        c.level <> 'SLA' OR (c.behavior = 'NONE' AND c.labels = '{}'::jsonb),
        COALESCE(replace(r.recipients, ' ', ''), '')
    FROM closed c
    JOIN executions_execution e ON e.id = c.execution_id
    LEFT JOIN sla_slarule r ON r.id = c.rule_id
    ON CONFLICT DO NOTHING
    RETURNING id, recipients, level, rule_id, namespace
), queued AS (
    INSERT INTO sla_pendingalert (miss_id, recipients, level, rule_id, namespace)
    SELECT id, recipients, level, rule_id, namespace FROM inserted
    WHERE recipients <> ''
)
SELECT (SELECT count(*) FROM closed), (SELECT count(*) FROM inserted)
"""


def _record_batch_postgresql(now: datetime, batch: int, execution_ids=None) -> int:
    # Two statement texts, not "ids IS NULL OR ...": psycopg prepares a
    # statement run often, and a generic plan of that OR would not use the
    # partial index the same way.
    scope = "" if execution_ids is None else "AND execution_id = ANY(%(ids)s)"
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD_SQL.replace("{scope}", scope),
            {"now": now, "batch": batch, "ids": list(execution_ids or [])},
        )
        closed, _inserted = cursor.fetchone()
    return closed


def _record_batch(now: datetime, batch: int, execution_ids=None) -> int:
    """The same in three ORM statements (SQLite has no data-modifying CTEs;
    its single writer makes the read-then-update safe)."""
    rows = list(
        _due(now, Kind.DURATION, batch, execution_ids).values(
            "id",
            "execution_id",
            "rule_id",
            "key",
            "level",
            "attempt",
            "threshold",
            "due_at",
            "behavior",
            "labels",
            "rule__recipients",
            "execution__namespace",
            "execution__flow_id",
            "execution__ended_at",
            "execution__state",
        )
    )
    misses = [
        SlaMiss(
            rule_id=r["rule_id"],
            execution_id=r["execution_id"],
            key=r["key"],
            kind=Kind.DURATION,
            level=r["level"],
            attempt=r["attempt"],
            namespace=r["execution__namespace"],
            flow_id=r["execution__flow_id"],
            threshold=r["threshold"],
            # The attempt's start: the execution's, or its restart's.
            duration=(r["execution__ended_at"] or now) - (r["due_at"] - r["threshold"]),
            started_at=r["due_at"] - r["threshold"],
            execution_state=r["execution__state"],
            detected_at=now,
            behavior=r["behavior"],
            labels=r["labels"],
            actions_done=r["level"] != Level.SLA
            or (r["behavior"] == Behavior.NONE and not r["labels"]),
            recipients=_recipients(r["rule__recipients"]),
        )
        for r in rows
    ]
    SlaMiss.objects.bulk_create(misses, ignore_conflicts=True)
    queue_alerts(
        SlaMiss.objects.filter(
            execution_id__in={r["execution_id"] for r in rows}, detected_at=now
        )
    )
    Deadline.objects.filter(id__in=[r["id"] for r in rows]).update(
        state=DeadlineState.MISSED
    )
    return len(rows)


def queue_alerts(new_misses) -> int:
    """Queue for the digest the misses of this queryset that have recipients
    (the misses just written: bulk_create with ignore_conflicts gives no ids)."""
    rows = new_misses.exclude(recipients="").values_list(
        "id", "recipients", "level", "rule_id", "namespace"
    )
    queued = PendingAlert.objects.bulk_create(
        [
            PendingAlert(
                miss_id=pk,
                recipients=recipients,
                level=level,
                rule_id=rule_id,
                namespace=namespace,
            )
            for pk, recipients, level, rule_id, namespace in rows
        ],
        ignore_conflicts=True,
    )
    return len(queued)


def _assertion_miss(deadline: Deadline, execution: Execution, now, why: str) -> None:
    """Record the miss of an EXECUTION_ASSERTION deadline (once per attempt)."""
    SlaMiss.objects.bulk_create(
        [
            SlaMiss(
                rule=deadline.rule,
                execution=execution,
                key=deadline.key,
                kind=Kind.ASSERTION,
                level=deadline.level,
                attempt=deadline.attempt,
                namespace=execution.namespace,
                flow_id=execution.flow_id,
                duration=execution.duration(),
                started_at=execution.started_at,
                execution_state=execution.state,
                detected_at=now,
                behavior=deadline.behavior,
                labels=deadline.labels,
                # CANCEL/FAIL is an action too, with or without labels.
                actions_done=not deadline.labels and deadline.behavior == Behavior.NONE,
                action=why,
                recipients=_recipients(
                    deadline.rule.recipients if deadline.rule else ""
                ),
            )
        ],
        ignore_conflicts=True,
    )
    queue_alerts(
        SlaMiss.objects.filter(
            execution=execution,
            key=deadline.key,
            level=deadline.level,
            attempt=deadline.attempt,
            detected_at=now,
        )
    )


def _assertion_holds(deadline: Deadline, execution: Execution) -> tuple[bool, str]:
    try:
        ok = truthy(evaluate(deadline.assertion, expression_context(execution)))
    except ExpressionError as exc:
        return False, f"assertion could not be evaluated: {exc.message}"
    return ok, "" if ok else f"assertion is false: {deadline.assertion}"


def check_assertions(
    now: datetime, limit: int = 500, execution_ids: list[int] | None = None
) -> int:
    """EXECUTION_ASSERTION of the flow's sla: list, once the execution ended
    (while it runs, ``check_running_assertions`` sees each change)."""
    found = 0
    with transaction.atomic():
        for deadline in _due(now, Kind.ASSERTION, limit, execution_ids).select_related(
            "execution", "rule"
        ):
            execution = deadline.execution
            ok, why = _assertion_holds(deadline, execution)
            if not ok:
                _assertion_miss(deadline, execution, now, why)
                found += 1
            deadline.state = DeadlineState.MET if ok else DeadlineState.MISSED
            deadline.save(update_fields=["state"])
    return found


def check_running_assertions(execution: Execution, spec) -> int:
    """On every change of a running execution (the executor's
    ``execution_advanced``, under its lock), as Kestra's executor evaluates
    an EXECUTION_ASSERTION on each execution change: a false assertion is a
    miss now, acted on (CANCEL/FAIL, labels) by the next tick, a second or so
    later, outside the executor's lock. An assertion that cannot be
    evaluated yet (an output of a task that has not run) is not judged
    before the end. Flows without an assertion cost nothing here."""
    if not any(e.get("type") == "EXECUTION_ASSERTION" for e in spec.sla or []):
        return 0
    found = 0
    now = timezone.now()
    for deadline in Deadline.objects.filter(
        execution_id=execution.pk,
        state=DeadlineState.OPEN,
        kind=Kind.ASSERTION,
        attempt=execution.attempt,
    ).select_related("rule"):
        try:
            ok = truthy(evaluate(deadline.assertion, expression_context(execution)))
        except ExpressionError:
            continue
        if ok:
            continue
        _assertion_miss(
            deadline, execution, now, f"assertion is false: {deadline.assertion}"
        )
        Deadline.objects.filter(pk=deadline.pk).update(state=DeadlineState.MISSED)
        found += 1
    return found


def _windows(rule: SlaRule, now: datetime) -> list[tuple[datetime, datetime]]:
    """Cron windows of ``rule`` that ended since the last check: (previous
    cron time, cron time]. The first cron time after the rule was created
    only opens the first window."""
    tz = zoneinfo.ZoneInfo(rule.tz or "UTC")
    cursor = rule.expected_checked_until
    if cursor is None:
        cursor = croniter(rule.expected_cron, rule.created_at.astimezone(tz)).get_next(
            datetime
        )
    ticks = croniter(rule.expected_cron, cursor.astimezone(tz))
    windows = []
    start = cursor
    while len(windows) < MAX_WINDOWS:
        end = ticks.get_next(datetime)
        if end > now:
            break
        windows.append((start, end))
        start = end
    return windows


def check_expected_runs(now: datetime) -> int:
    """A cron window that ended with fewer successful executions than the
    rule expects is a miss, even though no execution exists to point at."""
    found = 0
    rules = (
        SlaRule.objects.enabled().exclude(expected_cron="").filter(expected_runs__gt=0)
    )
    for rule in rules:
        windows = _windows(rule, now)
        if not windows:
            continue
        with transaction.atomic():
            # Claim the windows: a concurrent sweep that read the same cursor
            # updates nothing and moves on.
            claimed = SlaRule.objects.filter(
                pk=rule.pk, expected_checked_until=rule.expected_checked_until
            ).update(expected_checked_until=windows[-1][1])
            if not claimed:
                continue
            scope = Execution.objects.in_namespace(rule.namespace).with_labels(
                rule.labels
            )
            if rule.flow_id:
                scope = scope.filter(flow_id=rule.flow_id)
            scope = scope.filter(state__in=SUCCESSFUL)
            misses = []
            for start, end in windows:
                actual = scope.filter(created_at__gt=start, created_at__lte=end).count()
                if actual >= rule.expected_runs:
                    continue
                misses.append(
                    SlaMiss(
                        rule=rule,
                        key="expected",
                        kind=Kind.EXPECTED,
                        level=Level.SLA,
                        namespace=rule.namespace,
                        flow_id=rule.flow_id,
                        window_start=start,
                        window_end=end,
                        expected=rule.expected_runs,
                        actual=actual,
                        detected_at=now,
                        actions_done=True,
                        action="no execution to act on",
                        recipients=_recipients(rule.recipients),
                    )
                )
            SlaMiss.objects.bulk_create(misses, ignore_conflicts=True)
            queue_alerts(
                SlaMiss.objects.filter(
                    rule=rule,
                    execution__isnull=True,
                    window_end__in=[m.window_end for m in misses],
                    detected_at=now,
                )
            )
            found += len(misses)
    return found


def _apply(miss: SlaMiss) -> str:
    execution = miss.execution
    who = miss.source
    reason = (
        f"SLA breached ({who}): ran {format_duration(miss.duration)}, "
        f"limit {format_duration(miss.threshold)}"
        if miss.kind == Kind.DURATION
        else f"SLA assertion failed ({who})"
    )
    actor = Actor.system(
        f"sla-rule:{miss.rule_id}" if miss.rule_id else f"sla:{miss.key}", Cause.SLA
    )
    details = {"sla_miss_id": miss.pk, "sla_rule_id": miss.rule_id, "key": miss.key}
    done = []
    if miss.labels:
        set_labels(execution.pk, miss.labels, reason=reason, actor=actor)
        done.append("labels added: " + format_labels(miss.labels))
    if miss.behavior in (Behavior.CANCEL, Behavior.FAIL):
        final = State.CANCELLED if miss.behavior == Behavior.CANCEL else State.FAILED
        execution.refresh_from_db(fields=["state", "attempt"])
        if execution.state in TERMINAL:
            done.append(
                f"not {final.lower()}: the execution had already ended "
                f"({execution.state})"
            )
        elif execution.attempt != miss.attempt:
            # A late attempt swept after a restart must not stop the new one.
            done.append(
                f"not {final.lower()}: the execution was restarted since "
                f"(attempt {execution.attempt})"
            )
        else:
            stop(execution.pk, final=final, reason=reason, details=details, actor=actor)
            done.append("cancelled" if final == State.CANCELLED else "failed")
    return "; ".join(done)


def apply_actions(limit: int = 500, execution_ids: list[int] | None = None) -> int:
    """Breach actions (labels, cancel, fail) through executions.lifecycle, so
    the state history names the rule as the cause. A failing action is
    rolled back and retried by the next sweep."""
    count = 0
    pending = SlaMiss.objects.filter(actions_done=False).select_related(
        "execution", "rule"
    )
    if execution_ids is not None:
        pending = pending.filter(execution_id__in=execution_ids)
    for miss in pending.order_by("id")[:limit]:
        try:
            with transaction.atomic():
                if not SlaMiss.objects.filter(pk=miss.pk, actions_done=False).update(
                    actions_done=True
                ):
                    continue  # another sweep took it
                miss.action = _apply(miss)
                miss.save(update_fields=["action"])
            count += 1
        except Exception:  # noqa: BLE001 — one bad row must not stop the sweep
            log.exception(
                "SLA: breach action for miss %s failed; retrying next sweep", miss.pk
            )
    return count


# pg_try_advisory_lock key of the sweep ("SLA" in ASCII).
SWEEP_LOCK = 0x534C41


@contextmanager
def _single_sweep():
    """One sweep at a time across all machines (PostgreSQL advisory lock,
    released with the session if the process dies). Sweeps overlapping by
    accident would otherwise split the same minute's misses into two emails.
    SQLite takes its write lock per transaction, which serialises the steps."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [SWEEP_LOCK])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [SWEEP_LOCK])


def run(now: datetime | None = None, send: bool = True) -> SweepResult:
    """The whole sweep: the minute's safety net (beat, ``sla check``, cron)."""
    with _single_sweep() as alone:
        if not alone:
            log.info("SLA sweep skipped: another sweep is running")
            return SweepResult(skipped=True)
        return _run(now, send)


def tick(now: datetime | None = None) -> SweepResult:
    """What fires deadlines at their time, every ORCHESTRA_SLA_TICK_SECONDS:
    the due deadlines (one range scan of the partial index ``deadline_open_due``,
    a few milliseconds when nothing is due), their actions and alerts. Each
    tick sends what it found, so an SLO warning leaves when the SLO passes,
    not with the SLA breach that follows. Cron windows of expected runs stay
    with the minute sweep. A tick that finds the sweep running stands aside:
    the sweep does the same work."""
    with _single_sweep() as alone:
        if not alone:
            return SweepResult(skipped=True)
        return _run(now, send=True, expected=False, batch=TICK_BATCH)


def tick_for(execution_ids: list[int], now: datetime | None = None) -> SweepResult:
    """The tick for these executions only, without alerts: what ``orchestra
    flows test`` runs, where no beat does (a test run pages nobody; its
    misses still wait for the sweep's digest if a rule has recipients)."""
    now = now or timezone.now()
    result = SweepResult()
    result.misses = record_duration_misses(now, execution_ids=execution_ids)
    result.assertion_misses = check_assertions(now, execution_ids=execution_ids)
    result.actions = apply_actions(execution_ids=execution_ids)
    return result


def _run(
    now: datetime | None, send: bool, expected: bool = True, batch: int = BATCH
) -> SweepResult:
    now = now or timezone.now()
    result = SweepResult()
    result.misses = record_duration_misses(now, batch)
    result.assertion_misses = check_assertions(now)
    if expected:
        result.expected_misses = check_expected_runs(now)
    result.actions = apply_actions()
    if send:
        result.digests_built = digest.build_digests(now)
        result.emails_sent, result.emails_failed = digest.send_pending()
    return result
