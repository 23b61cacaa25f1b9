"""Trigger declarations: Schedule (cron), Webhook and Flow triggers."""

from __future__ import annotations

import difflib
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from flows.expressions import (
    ExpressionError,
    check_syntax,
    evaluate,
    is_dynamic,
    truthy,
)
from orchestra.lib.cronfields import out_of_range
from orchestra.lib.dates import parse_datetime
from orchestra.lib.durations import parse_duration
from orchestra.lib.labels import LabelError, label_map
from orchestra.lib.yamlmarks import format_path

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
COMMON = {
    "id",
    "type",
    "description",
    "disabled",
    "conditions",
    "inputs",
    "labels",
    "stopAfter",
    "logLevel",
    "minLogLevel",
    "workerGroup",
}
KEYS = {
    "schedule": COMMON
    | {
        "cron",
        "timezone",
        "lateMaximumDelay",
        "recoverMissedSchedules",
        "backfill",
        "withSeconds",
        "scheduleConditions",
    },
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
    macros = {
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    }
    text = str(expression).strip()
    if text in macros:
        return text
    fields = text.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"cron {text!r} has {len(fields)} fields; expected 5 (minute hour day month weekday) "
            "or 6 (with seconds first)"
        )
    problem = out_of_range(fields)
    if problem:
        raise ValueError(f"invalid cron expression {expression!r}: {problem}")
    if len(fields) == 6:
        # Kestra's 6-field form puts seconds first; croniter puts them last.
        text = " ".join(fields[1:] + fields[:1])
    if not croniter.is_valid(text):
        raise ValueError(f"invalid cron expression {expression!r}")
    return text


MIN_WEBHOOK_KEY = 16
WEBHOOK_KEY_ADVICE = (
    f"a webhook key shorter than {MIN_WEBHOOK_KEY} characters can be guessed; "
    "use a long random key, e.g. \"{{ secret('WEBHOOK_KEY') }}\""
)


def short_webhook_key(key: Any) -> bool:
    """A literal key under MIN_WEBHOOK_KEY characters (a key read from a
    secret is the operator's to choose)."""
    return isinstance(key, str) and not is_dynamic(key) and len(key) < MIN_WEBHOOK_KEY


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
            checker.error(
                (*path, "type"),
                f"unknown trigger type '{item.get('type')}'{hint} Known: Schedule, Webhook, Flow",
            )
            continue
        for key in item:
            if key not in KEYS[kind]:
                close = difflib.get_close_matches(key, KEYS[kind], n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                checker.error(
                    (*path, key), f"unknown {kind} trigger property '{key}'{hint}"
                )
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
                    checker.error(
                        (*path, "timezone"), f"unknown time zone {item['timezone']!r}"
                    )
            if item.get("lateMaximumDelay") is not None:
                try:
                    parse_duration(item["lateMaximumDelay"])
                except ValueError as exc:
                    checker.error((*path, "lateMaximumDelay"), str(exc))
            policy = str(item.get("recoverMissedSchedules", "ALL")).upper()
            if policy not in ("ALL", "LAST", "NONE"):
                checker.error(
                    (*path, "recoverMissedSchedules"), "must be ALL, LAST or NONE"
                )
            if item.get("backfill") is not None:
                start = (
                    item["backfill"].get("start")
                    if isinstance(item["backfill"], dict)
                    else None
                )
                try:
                    entry["backfill_start"] = parse_datetime(start)
                except ValueError as exc:
                    checker.error((*path, "backfill", "start"), str(exc))
        elif kind == "webhook":
            key = item.get("key")
            if not key or not isinstance(key, str) or len(key) < 4:
                checker.error(
                    (*path, "key"),
                    "Webhook trigger needs a 'key' of at least 4 characters",
                )
            elif short_webhook_key(key):
                # Refused when saved as a new key (flows.models.save_flow);
                # a flow that already had it keeps working, with this warning.
                checker.warnings.append(
                    f"{format_path(path)}.key: {WEBHOOK_KEY_ADVICE}"
                )
        elif kind == "flow":
            entry["states"] = _states(item.get("states"), checker, (*path, "states"))
            pre = item.get("preconditions")
            if pre is not None:
                entry["pre_conditions"] = _preconditions(
                    pre, checker, (*path, "preconditions")
                )
        entry["conditions"] = _conditions(
            item.get("conditions"), kind, checker, (*path, "conditions")
        )
        if item.get("inputs") is not None and not isinstance(item["inputs"], dict):
            checker.error((*path, "inputs"), "inputs must be a mapping of name: value")
        if item.get("labels") is not None:
            labels = _labels_map(item["labels"])
            if labels is None:
                checker.error(
                    (*path, "labels"),
                    "labels must be a mapping of key: value or a list of {key, value}",
                )
            entry["labels"] = labels or {}
        out.append(entry)
    return out


TERMINAL_STATES = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")

# Condition types, with Kestra's spellings. Each applies to some trigger kinds.
CONDITION_TYPES = {
    "ExecutionStatus": (
        "io.kestra.plugin.core.condition.ExecutionStatus",
        "io.kestra.plugin.core.condition.ExecutionStatusCondition",
        "io.kestra.core.models.conditions.types.ExecutionStatusCondition",
    ),
    "ExecutionNamespace": (
        "io.kestra.plugin.core.condition.ExecutionNamespace",
        "io.kestra.plugin.core.condition.ExecutionNamespaceCondition",
        "io.kestra.core.models.conditions.types.ExecutionNamespaceCondition",
    ),
    "ExecutionFlow": (
        "io.kestra.plugin.core.condition.ExecutionFlow",
        "io.kestra.plugin.core.condition.ExecutionFlowCondition",
        "io.kestra.core.models.conditions.types.ExecutionFlowCondition",
        # Written in some published examples: namespace, flowId, states.
        "io.kestra.plugin.core.condition.Execution",
    ),
    "ExecutionLabels": (
        "io.kestra.plugin.core.condition.ExecutionLabels",
        "io.kestra.plugin.core.condition.ExecutionLabelsCondition",
        "io.kestra.core.models.conditions.types.ExecutionLabelsCondition",
    ),
    "Expression": (
        "io.kestra.plugin.core.condition.Expression",
        "io.kestra.plugin.core.condition.ExpressionCondition",
        "io.kestra.core.models.conditions.types.ExpressionCondition",
    ),
}
CONDITION_KEYS = {
    "ExecutionStatus": {"in", "notIn"},
    "ExecutionNamespace": {"namespace", "prefix", "comparison"},
    "ExecutionFlow": {"namespace", "flowId", "states"},
    "ExecutionLabels": {"labels"},
    "Expression": {"expression"},
}
CONDITIONS_FOR = {
    "flow": set(CONDITION_TYPES),
    "schedule": {"Expression"},
    "webhook": {"Expression"},
}


def condition_kind(type_name: str) -> str | None:
    for short, names in CONDITION_TYPES.items():
        if type_name == short or type_name in names:
            return short
    return None


def _states(value: Any, checker, path: tuple) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        checker.error(path, "expected a list of states")
        return []
    out = []
    for index, state in enumerate(value):
        name = str(state).upper()
        if name not in TERMINAL_STATES:
            checker.error(
                (*path, index),
                f"unknown end state {state!r}; use {', '.join(TERMINAL_STATES)}",
            )
        out.append(name)
    return out


def _labels_map(value: Any) -> dict[str, str] | None:
    """The labels, or None when they cannot be read (the caller says where)."""
    try:
        return label_map(value)
    except LabelError:
        return None


def _conditions(value: Any, kind: str, checker, path: tuple) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        checker.error(path, "expected a list of conditions")
        return []
    out = []
    for index, item in enumerate(value):
        where = (*path, index)
        if not isinstance(item, dict) or "type" not in item:
            checker.error(where, "a condition is a mapping with a 'type'")
            continue
        short = condition_kind(str(item["type"]))
        allowed = CONDITIONS_FOR[kind]
        if short is None or short not in allowed:
            names = ", ".join(sorted(allowed))
            what = (
                "unknown condition type"
                if short is None
                else f"{short} does not apply to a {kind} trigger;"
            )
            checker.error(
                (*where, "type"), f"{what} '{item['type']}'. Usable here: {names}"
            )
            continue
        for key in item:
            if key not in CONDITION_KEYS[short] | {"type", "id", "description"}:
                close = difflib.get_close_matches(key, CONDITION_KEYS[short], n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                checker.error(
                    (*where, key), f"unknown {short} condition property '{key}'{hint}"
                )
        entry = {"kind": short, **{k: v for k, v in item.items() if k != "type"}}
        if short == "ExecutionStatus":
            entry["in"] = _states(item.get("in"), checker, (*where, "in"))
            entry["notIn"] = _states(item.get("notIn"), checker, (*where, "notIn"))
        elif short == "ExecutionFlow":
            if not item.get("flowId") or not item.get("namespace"):
                checker.error(where, "ExecutionFlow needs 'namespace' and 'flowId'")
            entry["states"] = _states(item.get("states"), checker, (*where, "states"))
        elif short == "ExecutionNamespace":
            if not item.get("namespace"):
                checker.error(where, "ExecutionNamespace needs 'namespace'")
            comparison = str(
                item.get("comparison", "PREFIX" if item.get("prefix") else "EQUALS")
            ).upper()
            if comparison not in ("EQUALS", "PREFIX", "SUFFIX"):
                checker.error(
                    (*where, "comparison"),
                    "comparison must be EQUALS, PREFIX or SUFFIX",
                )
            entry["comparison"] = comparison
        elif short == "ExecutionLabels":
            labels = _labels_map(item.get("labels"))
            if not labels:
                checker.error(
                    (*where, "labels"),
                    "ExecutionLabels needs 'labels' (a mapping of key: value)",
                )
            entry["labels"] = labels or {}
        elif short == "Expression":
            expression = item.get("expression")
            if not isinstance(expression, str) or not expression.strip():
                checker.error(where, "Expression condition needs 'expression'")
            else:
                try:
                    check_syntax(expression)
                except ExpressionError as exc:
                    checker.error((*where, "expression"), exc.message)
        out.append(entry)
    return out


def _preconditions(value: Any, checker, path: tuple) -> list[dict[str, Any]]:
    """Kestra's newer ``preconditions.flows``. One entry is an ExecutionFlow
    condition; several (all within a time window) are not supported yet."""
    flows = value.get("flows") if isinstance(value, dict) else None
    if not isinstance(flows, list) or not flows:
        checker.error(
            path, "preconditions needs 'flows': a list of {namespace, flowId, states}"
        )
        return []
    if len(flows) > 1:
        checker.error(
            (*path, "flows"),
            "preconditions with several flows (all ending within a "
            "time window) are not supported; use one entry, or 'conditions'",
        )
        return []
    item = flows[0] if isinstance(flows[0], dict) else {}
    if not item.get("namespace"):
        checker.error((*path, "flows", 0), "a precondition needs at least 'namespace'")
        return []
    condition = {
        "kind": "ExecutionFlow",
        "namespace": item["namespace"],
        "flowId": item.get("flowId"),
        "states": _states(item.get("states"), checker, (*path, "flows", 0, "states")),
    }
    return [condition]


def flow_condition_failures(
    trigger: dict[str, Any], source: dict[str, Any], context: dict[str, Any]
) -> list[str]:
    """Why a Flow trigger does not fire for the ended execution ``source``
    ({namespace, flowId, state, labels}); empty when it fires. Expression
    conditions are evaluated in ``context``; an ExpressionError propagates."""
    failures = []
    state = source["state"]
    states = trigger.get("states") or []
    if states and state not in states:
        failures.append(f"state {state} not in {states}")
    for condition in [
        *trigger.get("pre_conditions", []),
        *trigger.get("conditions", []),
    ]:
        reason = _condition_failure(condition, source, context)
        if reason:
            failures.append(reason)
    return failures


def _condition_failure(
    condition: dict[str, Any], source: dict[str, Any], context: dict[str, Any]
) -> str:
    kind = condition["kind"]
    if kind == "ExecutionStatus":
        if condition["in"] and source["state"] not in condition["in"]:
            return f"ExecutionStatus: {source['state']} not in {condition['in']}"
        if source["state"] in condition["notIn"]:
            return f"ExecutionStatus: {source['state']} is excluded"
    elif kind == "ExecutionFlow":
        if source["namespace"] != condition.get("namespace") or (
            condition.get("flowId") and source["flowId"] != condition["flowId"]
        ):
            return f"ExecutionFlow: not {condition.get('namespace')}.{condition.get('flowId') or '*'}"
        if condition.get("states") and source["state"] not in condition["states"]:
            return f"ExecutionFlow: {source['state']} not in {condition['states']}"
    elif kind == "ExecutionNamespace":
        wanted, ns = str(condition["namespace"]), source["namespace"]
        comparison = condition["comparison"]
        ok = {
            "EQUALS": ns == wanted,
            "PREFIX": ns.startswith(wanted),
            "SUFFIX": ns.endswith(wanted),
        }[comparison]
        if not ok:
            return f"ExecutionNamespace: {ns} does not match {wanted} ({comparison})"
    elif kind == "ExecutionLabels":
        labels = source.get("labels") or {}
        missing = {k: v for k, v in condition["labels"].items() if labels.get(k) != v}
        if missing:
            return f"ExecutionLabels: missing {missing}"
    elif kind == "Expression":
        if not truthy(evaluate(condition["expression"], context)):
            return f"Expression {condition['expression']!r} is false"
    return ""


def expression_conditions_hold(trigger: dict[str, Any], context: dict[str, Any]) -> str:
    """For Schedule and Webhook triggers: the first Expression condition that
    is false (its text), or '' when all hold."""
    for condition in trigger.get("conditions", []):
        if condition["kind"] == "Expression" and not truthy(
            evaluate(condition["expression"], context)
        ):
            return f"condition {condition['expression']!r} is false"
    return ""
