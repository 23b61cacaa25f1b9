"""Trigger declarations: Schedule (cron), Webhook and Flow triggers."""

from __future__ import annotations

import difflib
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from orchestra.lib.durations import parse_duration

TRIGGER_TYPES = {
    "schedule": (
        "io.kestra.plugin.core.trigger.Schedule",
        "io.kestra.core.models.triggers.types.Schedule",
        "Schedule",
    ),
    "webhook": (
        "io.kestra.plugin.core.trigger.Webhook",
        "io.kestra.core.models.triggers.types.Webhook",
        "Webhook",
    ),
    "flow": (
        "io.kestra.plugin.core.trigger.Flow",
        "io.kestra.core.models.triggers.types.Flow",
        "Flow",
    ),
}
COMMON = {"id", "type", "description", "disabled", "conditions", "inputs", "labels",
          "stopAfter", "logLevel", "minLogLevel", "workerGroup"}
KEYS = {
    "schedule": COMMON | {"cron", "timezone", "lateMaximumDelay", "recoverMissedSchedules",
                          "backfill", "withSeconds", "scheduleConditions"},
    "webhook": COMMON | {"key", "wait", "returnOutputs"},
    "flow": COMMON | {"states", "preconditions"},
}


def trigger_kind(type_name: str) -> str | None:
    for kind, names in TRIGGER_TYPES.items():
        if type_name in names or type_name.lower() == names[-1].lower():
            return kind
    return None


def validate_cron(expression: str, with_seconds: bool = False) -> str:
    """Return the cron expression or raise ValueError explaining what is wrong."""
    macros = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
    text = str(expression).strip()
    if text in macros:
        return text
    fields = text.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"cron {text!r} has {len(fields)} fields; expected 5 (minute hour day month weekday) "
            "or 6 (with seconds first)"
        )
    if len(fields) == 6:
        # Kestra's 6-field form puts seconds first; croniter puts them last.
        text = " ".join(fields[1:] + fields[:1])
    if not croniter.is_valid(text):
        raise ValueError(f"invalid cron expression {expression!r}")
    return text


def check_triggers(value: Any, checker) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        checker.error(("triggers",), "expected a list of triggers")
        return []
    out, seen = [], set()
    for index, item in enumerate(value):
        path = ("triggers", index)
        if not isinstance(item, dict):
            checker.error(path, "expected a trigger (a mapping with 'id' and 'type')")
            continue
        trigger_id = item.get("id")
        if not trigger_id:
            checker.error(path, "trigger has no 'id'")
            continue
        if trigger_id in seen:
            checker.error((*path, "id"), f"duplicate trigger id '{trigger_id}'")
        seen.add(trigger_id)
        kind = trigger_kind(str(item.get("type", "")))
        if kind is None:
            names = [n for names in TRIGGER_TYPES.values() for n in names]
            close = difflib.get_close_matches(str(item.get("type")), names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            checker.error((*path, "type"), f"unknown trigger type '{item.get('type')}'{hint} Known: Schedule, Webhook, Flow")
            continue
        for key in item:
            if key not in KEYS[kind]:
                close = difflib.get_close_matches(key, KEYS[kind], n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                checker.error((*path, key), f"unknown {kind} trigger property '{key}'{hint}")
        entry = dict(item)
        entry["kind"] = kind
        if kind == "schedule":
            if "cron" not in item:
                checker.error(path, "Schedule trigger needs 'cron'")
            else:
                try:
                    entry["cron_normalized"] = validate_cron(item["cron"])
                except ValueError as exc:
                    checker.error((*path, "cron"), str(exc))
            if item.get("timezone"):
                try:
                    ZoneInfo(str(item["timezone"]))
                except (ZoneInfoNotFoundError, ValueError):
                    checker.error((*path, "timezone"), f"unknown time zone {item['timezone']!r}")
            if item.get("lateMaximumDelay") is not None:
                try:
                    parse_duration(item["lateMaximumDelay"])
                except ValueError as exc:
                    checker.error((*path, "lateMaximumDelay"), str(exc))
            policy = str(item.get("recoverMissedSchedules", "ALL")).upper()
            if policy not in ("ALL", "LAST", "NONE"):
                checker.error((*path, "recoverMissedSchedules"), "must be ALL, LAST or NONE")
        elif kind == "webhook":
            key = item.get("key")
            if not key or not isinstance(key, str) or len(key) < 4:
                checker.error((*path, "key"), "Webhook trigger needs a 'key' of at least 4 characters")
        out.append(entry)
    return out
