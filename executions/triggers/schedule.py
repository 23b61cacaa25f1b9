"""Schedule triggers: cron dates fire executions, each date exactly once.

Celery beat runs ``evaluate_schedules`` every few seconds. One indexed query
finds the triggers whose ``next_date`` has come; each is then handled under
its row lock (``SKIP LOCKED``, so two schedulers share the work instead of
waiting on each other), and every fired date is a ``TriggerEvent`` row whose
unique constraint (flow, trigger, date) rejects a second firing even if two
schedulers somehow handled the same trigger. ``next_date`` only moves forward
in the transaction that fired the dates before it: a scheduler that stops,
crashes or restarts resumes from there, and ``recoverMissedSchedules``
decides what happens to the dates it missed meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError
from executions.lifecycle.start import get_flow
from executions.models import Trigger, TriggerEvent, TriggerKind
from executions.triggers.fire import (
    TriggerError,
    claim,
    execution_for_trigger,
    latest_revision,
    trigger_actor,
)
from executions.triggers.registry import cron_after, cron_before, trigger_decl
from flows.expressions import ExpressionError, format_native
from flows.models import Flow
from flows.triggers import expression_conditions_hold
from orchestra.lib.dates import parse_datetime
from orchestra.lib.durations import parse_duration

log = logging.getLogger("orchestra.schedule")

# Dates one trigger may fire in one evaluation; the rest wait for the next.
MAX_DATES_PER_PASS = 1000
MAX_BACKFILL = 10000
# From the API and the flow page the dates fire inside the request: fewer.
MAX_BACKFILL_HTTP = 1000


def _missed_after() -> timedelta:
    return timedelta(
        seconds=getattr(settings, "ORCHESTRA_SCHEDULE_MISSED_AFTER_SECONDS", 60.0)
    )


def variables_for(cron: str, tz: str, date: datetime) -> dict[str, Any]:
    """``trigger.date``, ``trigger.next``, ``trigger.previous``."""
    local = date.astimezone(ZoneInfo(tz or "UTC"))
    return {
        "date": format_native(local),
        "next": format_native(cron_after(cron, tz, local)),
        "previous": format_native(cron_before(cron, tz, local)),
    }


def due_dates(
    cron: str, tz: str, start: datetime, now: datetime, cap: int
) -> list[datetime]:
    """Cron dates from ``start`` (inclusive) to ``now`` (inclusive), at most ``cap``."""
    zone = ZoneInfo(tz or "UTC")
    it = croniter(cron, start.astimezone(zone) - timedelta(microseconds=1))
    dates = []
    while len(dates) < cap:
        date = it.get_next(datetime)
        if date > now:
            break
        dates.append(date)
    return dates


def in_gap(dates: list[datetime], now: datetime) -> bool:
    """The scheduler was away: the oldest due date was reached more than
    ORCHESTRA_SCHEDULE_MISSED_AFTER_SECONDS late. Every date due in this pass
    then belongs to the gap, whatever the cron's period (a 10-second cron
    after a 3-minute outage has 18 dates in it, none of them on time)."""
    return bool(dates) and dates[0] < now - _missed_after()


def choose(
    dates: list[datetime], now: datetime, decl: dict[str, Any]
) -> tuple[list, dict]:
    """Apply ``recoverMissedSchedules`` and ``lateMaximumDelay``.

    Outside a gap (see ``in_gap``) every due date fires. After a gap, ALL
    fires every date of it; LAST only the latest (one run for the whole gap);
    NONE none: the schedule resumes with the next date. Dates later than
    ``lateMaximumDelay`` are skipped whatever the policy.
    Returns (dates to fire, {date: why skipped}).
    """
    policy = str(decl.get("recoverMissedSchedules", "ALL")).upper()
    skipped: dict[datetime, str] = {}
    if policy == "ALL" or not in_gap(dates, now):
        chosen = list(dates)
    else:
        chosen = dates[-1:] if policy == "LAST" else []
        why = f"missed (recoverMissedSchedules: {policy})"
        skipped.update({d: why for d in dates if d not in chosen})
    if decl.get("lateMaximumDelay") is not None:
        limit = parse_duration(decl["lateMaximumDelay"])
        late = [d for d in chosen if now - d > limit]
        skipped.update(
            {d: f"later than lateMaximumDelay {decl['lateMaximumDelay']}" for d in late}
        )
        chosen = [d for d in chosen if d not in late]
    return chosen, skipped


@dataclass
class Pass:
    """What one evaluation did (returned to beat, printed by the CLI)."""

    triggers: int = 0
    fired: list[int] = field(default_factory=list)
    skipped: int = 0
    failed: int = 0
    duplicates: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "triggers": self.triggers,
            "fired": len(self.fired),
            "skipped": self.skipped,
            "failed": self.failed,
            "duplicates": self.duplicates,
        }


def evaluate_schedules(now: datetime | None = None, batch: int = 200) -> Pass:
    """Fire every schedule that is due at ``now`` (default: the clock)."""
    now = now or timezone.now()
    result = Pass()
    live = Flow.objects.filter(
        namespace=OuterRef("namespace"),
        flow_id=OuterRef("flow_id"),
        deleted=False,
        disabled=False,
    )
    # Schedules of deleted or disabled flows are switched off; deploying the
    # flow again switches them on from that moment.
    Trigger.objects.filter(kind=TriggerKind.SCHEDULE, disabled=False).exclude(
        Exists(live)
    ).update(disabled=True, updated_at=now)
    due = list(
        Trigger.objects.filter(
            kind=TriggerKind.SCHEDULE, disabled=False, next_date__lte=now
        )
        .order_by("next_date")
        .values_list("pk", flat=True)[:batch]
    )
    for pk in due:
        _fire_due(pk, now, result)
    return result


def _fire_due(pk: int, now: datetime, result: Pass) -> None:
    with transaction.atomic():
        row = (
            Trigger.objects.select_for_update(skip_locked=True)
            .filter(pk=pk, disabled=False, next_date__lte=now)
            .first()
        )
        if row is None:
            return  # another scheduler holds it, or it moved on already
        result.triggers += 1
        revision = latest_revision(row.namespace, row.flow_id)
        decl = trigger_decl(revision.spec, row.trigger_id) if revision else None
        if decl is None or decl["kind"] != TriggerKind.SCHEDULE:
            row.disabled = True
            row.save(update_fields=["disabled"])
            return
        dates = due_dates(
            row.cron, row.time_zone, row.next_date, now, MAX_DATES_PER_PASS
        )
        policy = str(decl.get("recoverMissedSchedules", "ALL")).upper()
        capped = len(dates) >= MAX_DATES_PER_PASS
        if capped and policy != "ALL" and in_gap(dates, now):
            # A gap longer than one pass can read: its latest date is the
            # cron's last one before now, and the rest is skipped at once.
            latest = cron_before(row.cron, row.time_zone, now + timedelta(seconds=1))
            dates, capped = [*dates[:-1], latest], False
        chosen, skipped = choose(dates, now, decl)
        for date in dates:
            if date in chosen:
                _fire_date(
                    row,
                    revision,
                    decl,
                    date,
                    result,
                    actor=trigger_actor(f"schedule:{row.trigger_id}"),
                )
            else:
                result.skipped += 1
                log.info("%s: %s skipped: %s", row, date.isoformat(), skipped.get(date))
        if dates:
            row.last_date = dates[-1]
        # Capped: continue after the last date handled; otherwise after now.
        after = dates[-1] if capped else now
        row.next_date = cron_after(row.cron, row.time_zone, after)
        row.updated_at = timezone.now()
        row.save(update_fields=["last_date", "next_date", "updated_at"])


def _fire_date(
    row: Trigger,
    revision,
    decl: dict[str, Any],
    date: datetime,
    result: Pass,
    *,
    actor: Actor,
    backfill: bool = False,
    inputs: dict | None = None,
    labels: dict | None = None,
) -> TriggerEvent | None:
    event = claim(
        namespace=row.namespace,
        flow_id=row.flow_id,
        trigger_id=row.trigger_id,
        kind=TriggerKind.SCHEDULE,
        scheduled_at=date,
        backfill=backfill,
        actor=actor.name,
        status=TriggerEvent.Status.PENDING,
    )
    if event is None:
        result.duplicates += 1
        return None
    variables = variables_for(row.cron, row.time_zone, date)
    try:
        why_not = expression_conditions_hold(decl, {"trigger": variables})
    except ExpressionError as exc:
        why_not = f"condition error: {exc.message}"
    if why_not:
        event.status, event.reason = TriggerEvent.Status.SKIPPED, why_not
        event.save(update_fields=["status", "reason"])
        result.skipped += 1
        return event
    if inputs:
        decl = {**decl, "inputs": {**(decl.get("inputs") or {}), **inputs}}
    extra_labels = dict(labels or {})
    if backfill:
        extra_labels.setdefault("system.backfill", "true")
    try:
        execution = execution_for_trigger(
            revision, decl, variables, actor=actor, labels=extra_labels
        )
    except TriggerError as exc:
        event.status, event.reason = TriggerEvent.Status.FAILED, str(exc)
        event.save(update_fields=["status", "reason"])
        result.failed += 1
        log.warning("%s at %s did not start: %s", row, date.isoformat(), exc)
        return event
    event.status, event.execution = TriggerEvent.Status.FIRED, execution
    event.save(update_fields=["status", "execution"])
    result.fired.append(execution.pk)
    return event


def schedule_ids(spec) -> list[str]:
    """Ids of the flow's Schedule triggers, in declaration order."""
    return [t["id"] for t in spec.triggers if t["kind"] == TriggerKind.SCHEDULE]


@dataclass
class Backfill:
    dates: list[datetime]
    created: list[tuple[datetime, int]] = field(default_factory=list)
    existing: list[datetime] = field(default_factory=list)
    failed: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def to_fire(self) -> list[datetime]:
        """The dates a run would start (those that have not fired yet)."""
        done = set(self.existing)
        return [d for d in self.dates if d not in done]

    def summary(self, dry_run: bool) -> str:
        if dry_run:
            return (
                f"{len(self.dates)} dates, {len(self.to_fire)} would start "
                "(dry run: nothing started)"
            )
        return (
            f"{len(self.created)} started, {len(self.existing)} already fired, "
            f"{len(self.failed)} failed"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "dates": [format_native(d) for d in self.dates],
            "created": [
                {"date": format_native(d), "execution_id": pk} for d, pk in self.created
            ],
            "already_fired": [format_native(d) for d in self.existing],
            "failed": [{"date": format_native(d), "reason": r} for d, r in self.failed],
        }


def backfill(
    namespace: str,
    flow_id: str,
    trigger_id: str,
    start: Any,
    end: Any,
    *,
    inputs: dict | None = None,
    labels: dict | None = None,
    actor: Actor,
    dry_run: bool = False,
    max_dates: int = MAX_BACKFILL,
) -> Backfill:
    """Fire a schedule's dates from ``start`` to ``end`` (inclusive; naive
    datetimes are in the trigger's time zone). Dates that fired already are
    left alone, so a backfill can be run again safely. Raises ActionError,
    also when the range holds more than ``max_dates`` dates."""
    flow = get_flow(namespace, flow_id)
    revision = flow.latest
    decl = trigger_decl(revision.spec, trigger_id)
    if decl is None or decl["kind"] != TriggerKind.SCHEDULE:
        known = ", ".join(schedule_ids(revision.spec)) or "none"
        raise ActionError(
            f"flow {namespace}.{flow_id} has no Schedule trigger '{trigger_id}' "
            f"(its schedules: {known})"
        )
    tz = str(decl.get("timezone") or "UTC")
    try:
        first, last = _local(start, tz), _local(end, tz)
    except ValueError as exc:
        raise ActionError(f"backfill dates: {exc}") from None
    # "--end 2024-01-31" includes the 31st: the whole day, up to the next
    # midnight of the trigger's zone (wall-clock, so DST days too).
    through = last + timedelta(days=1) - timedelta(microseconds=1)
    if not _bare_date(end):
        through = last
    if through < first:
        raise ActionError(
            f"backfill end {format_native(last)} is before its start {format_native(first)}"
        )
    cron = decl["cron_normalized"]
    dates = due_dates(cron, tz, first, through, max_dates + 1)
    if len(dates) > max_dates:
        raise ActionError(
            f"the range holds more than {max_dates} dates of '{decl['cron']}'; "
            "backfill a shorter range at a time"
        )
    report = Backfill(dates=dates)
    fired = set(
        TriggerEvent.objects.filter(
            namespace=namespace,
            flow_id=flow_id,
            trigger_id=trigger_id,
            scheduled_at__in=dates,
        ).values_list("scheduled_at", flat=True)
    )
    report.existing = [d for d in dates if d in fired]
    if dry_run:
        return report
    row = Trigger.objects.filter(
        namespace=namespace, flow_id=flow_id, trigger_id=trigger_id
    ).first()
    if row is None:  # flows saved before triggers were tracked
        row = Trigger(namespace=namespace, flow_id=flow_id, trigger_id=trigger_id)
    row.cron, row.time_zone = cron, tz
    for date in dates:
        if date in fired:
            continue
        with transaction.atomic():
            result = Pass()
            event = _fire_date(
                row,
                revision,
                decl,
                date,
                result,
                actor=actor,
                backfill=True,
                inputs=inputs,
                labels=labels,
            )
        if event is None:
            report.existing.append(date)
        elif event.status == TriggerEvent.Status.FIRED:
            report.created.append((date, event.execution_id))
        else:
            report.failed.append((date, event.reason))
    return report


def _bare_date(value: Any) -> bool:
    """A day without a time (``2024-01-31``)."""
    if isinstance(value, dt.date) and not isinstance(value, datetime):
        return True
    return isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip())


def _local(value: Any, tz: str) -> datetime:
    """Typed text without a zone is in the trigger's zone; datetime objects
    without one are UTC."""
    return parse_datetime(value, naive=ZoneInfo(tz) if isinstance(value, str) else UTC)
