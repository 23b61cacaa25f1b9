"""Trigger rows follow the flows: written in the transaction that saves a
flow revision, so the scheduler never reads a trigger of a flow that does
not exist (and never misses one that does)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from django.dispatch import receiver
from django.utils import timezone

from executions.models import Trigger, TriggerKind
from flows.models import Flow
from flows.signals import flow_saved


def cron_after(
    cron: str, tz: str, moment: datetime, inclusive: bool = False
) -> datetime:
    """The first date of ``cron`` (in time zone ``tz``) after ``moment`` (or
    at it, when ``inclusive``)."""
    zone = ZoneInfo(tz or "UTC")
    start = moment.astimezone(zone)
    if inclusive:
        start -= timedelta(microseconds=1)
    return croniter(cron, start).get_next(datetime)


def cron_before(cron: str, tz: str, moment: datetime) -> datetime:
    zone = ZoneInfo(tz or "UTC")
    return croniter(cron, moment.astimezone(zone)).get_prev(datetime)


def trigger_decl(spec, trigger_id: str) -> dict[str, Any] | None:
    return next((t for t in spec.triggers if t["id"] == trigger_id), None)


@receiver(flow_saved, dispatch_uid="orchestra.triggers.sync")
def on_flow_saved(sender, flow: Flow, revision, spec, **kwargs) -> None:
    sync_triggers(flow, revision.revision, spec)


def sync_triggers(flow, revision: int, spec, model=Trigger) -> None:
    """Create, update or remove this flow's trigger rows.

    A schedule keeps its ``next_date`` across revisions unless its cron or
    time zone changed, or it is switched back on: then it starts from now
    (from ``backfill.start`` for a new trigger that declares one), so
    switching a schedule off and on never replays the dates in between.
    """
    now = timezone.now()
    existing = {
        t.trigger_id: t
        for t in model.objects.filter(namespace=flow.namespace, flow_id=flow.flow_id)
    }
    keep = set()
    for decl in spec.triggers:
        keep.add(decl["id"])
        row = existing.get(decl["id"])
        new = row is None
        if new:
            row = model(
                namespace=flow.namespace, flow_id=flow.flow_id, trigger_id=decl["id"]
            )
        was_off = not new and row.disabled
        row.kind = str(decl["kind"])
        row.revision = revision
        row.disabled = bool(decl.get("disabled")) or spec.disabled
        row.updated_at = now
        if row.kind == TriggerKind.SCHEDULE:
            cron = decl.get("cron_normalized", "")
            tz = str(decl.get("timezone") or "UTC")
            if (
                new
                or was_off
                or row.cron != cron
                or row.time_zone != tz
                or row.next_date is None
            ):
                start = decl.get("backfill_start") if new else None
                row.next_date = cron_after(
                    cron, tz, start or now, inclusive=start is not None
                )
            row.cron, row.time_zone = cron, tz
        else:
            row.cron, row.time_zone, row.next_date = "", "", None
        row.save()
    model.objects.filter(namespace=flow.namespace, flow_id=flow.flow_id).exclude(
        trigger_id__in=keep
    ).delete()
