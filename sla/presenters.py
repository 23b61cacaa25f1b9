"""SLA misses and rules as plain data, shared by the CLI's --json and the REST API."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from flows.expressions import format_native
from orchestra.lib.durations import to_iso
from sla.models import SlaMiss, SlaRule


def _ts(value) -> str | None:
    return format_native(value) if value else None


def _iso(delta) -> str | None:
    return to_iso(delta) if delta is not None else None


def state_now_and_then(miss: SlaMiss) -> str:
    """The execution's state now, and the one it had when the miss was seen
    when that differs (a miss seen while it ran, read after it ended)."""
    then = miss.execution_state
    if not miss.execution_id:
        return then or "—"
    now = miss.execution.state
    return f"{now} ({then} when seen)" if then and then != now else now


def miss_as_dict(miss: SlaMiss) -> dict[str, Any]:
    base = settings.ORCHESTRA_BASE_URL.rstrip("/")
    return {
        "id": miss.pk,
        "level": miss.level,
        "kind": miss.kind,
        "ruleId": miss.rule_id,
        "source": miss.key,
        "namespace": miss.namespace,
        "flowId": miss.flow_id or None,
        "executionId": miss.execution_id,
        "executionUrl": f"{base}/executions/{miss.execution_id}/"
        if miss.execution_id
        else None,
        # The state when the miss was seen, and now (None without an execution).
        "executionState": miss.execution_state or None,
        "currentState": getattr(miss, "current_state", None),
        "startDate": _ts(miss.started_at),
        "threshold": _iso(miss.threshold),
        "duration": _iso(miss.duration),
        "windowStart": _ts(miss.window_start),
        "windowEnd": _ts(miss.window_end),
        "expected": miss.expected,
        "actual": miss.actual,
        "detectedDate": _ts(miss.detected_at),
        "action": miss.action or None,
        "recipients": miss.recipients.split(",") if miss.recipients else [],
        "emailed": miss.digest_id is not None,
    }


def rule_as_dict(rule: SlaRule) -> dict[str, Any]:
    return {
        "id": rule.pk,
        "name": rule.name,
        "namespace": rule.namespace,
        "flowId": rule.flow_id or None,
        "labels": rule.labels,
        "slo": _iso(rule.slo),
        "sla": _iso(rule.sla),
        "expectedRuns": rule.expected_runs,
        "expectedCron": rule.expected_cron or None,
        "timezone": rule.tz,
        "recipients": rule.recipient_list,
        "onBreach": rule.on_breach,
        "addLabels": rule.add_labels,
        "enabled": rule.enabled,
    }
