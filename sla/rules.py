"""Which rule applies, and which thresholds an execution gets.

Only rules about durations compete here: a rule that only expects runs per
cron window is checked on its own and never hides a namespace's thresholds.
Precedence (the most specific wins): a rule for the flow over a rule for its
namespace, a child namespace over its parent, more label selectors over
fewer; on a tie the oldest rule. Inputs named ``SLA``/``SLO`` (as in Kestra's
Lookup proposal) override the rule's durations for that execution; the flow's
own ``sla:`` list adds thresholds of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from orchestra.lib.durations import parse_duration
from sla.models import Behavior, Kind, Level, SlaRule


def applying_rule(
    namespace: str,
    flow_id: str,
    labels: dict[str, Any] | None = None,
    rules: list[SlaRule] | None = None,
) -> SlaRule | None:
    """The enabled rule that applies to executions of this flow carrying
    ``labels`` (``None``: a run whose labels are not known yet, i.e. one with
    none). The same decision as rules_for_flow, which every interface uses."""
    for candidate in rules_for_flow(namespace, flow_id, labels, rules):
        if candidate.status == "applies":
            return candidate.rule
    return None


def expected_run_rules(namespace: str, flow_id: str) -> list[SlaRule]:
    """Enabled rules counting runs per cron window that cover this flow."""
    return [
        r
        for r in SlaRule.objects.enabled()
        .covering(namespace, flow_id)
        .exclude(expected_cron="")
        if r.namespace == namespace or namespace.startswith(r.namespace + ".")
    ]


@dataclass
class Threshold:
    key: str
    level: str
    kind: str = Kind.DURATION
    threshold: timedelta | None = None
    assertion: str = ""
    behavior: str = Behavior.NONE
    labels: dict[str, str] = field(default_factory=dict)


def _input_duration(inputs: dict[str, Any], name: str) -> timedelta | None:
    value = inputs.get(name)
    if value in (None, ""):
        return None
    try:
        delta = parse_duration(value)
    except ValueError:
        return None
    return delta if delta.total_seconds() > 0 else None


def thresholds_for(
    rule: SlaRule | None,
    inputs: dict[str, Any] | None,
    flow_sla: list[dict[str, Any]],
) -> list[Threshold]:
    out: list[Threshold] = []
    inputs = inputs or {}
    for level, attr in ((Level.SLO, "slo"), (Level.SLA, "sla")):
        from_input = _input_duration(inputs, level.value)
        from_rule = getattr(rule, attr) if rule else None
        if from_input is None and from_rule is None:
            continue
        breach = level == Level.SLA and rule is not None
        out.append(
            Threshold(
                key="input" if from_input is not None else "rule",
                level=level,
                threshold=from_input or from_rule,
                behavior=rule.on_breach if breach else Behavior.NONE,
                labels=dict(rule.add_labels or {}) if breach else {},
            )
        )
    for entry in flow_sla or []:
        key = f"flow:{entry['id']}"
        labels = dict(entry.get("labels") or {})
        if entry["type"] == "MAX_DURATION" and entry.get("duration"):
            out.append(
                Threshold(
                    key=key,
                    level=Level.SLA,
                    threshold=timedelta(seconds=float(entry["duration"])),
                    behavior=entry.get("behavior", Behavior.NONE),
                    labels=labels,
                )
            )
        elif entry["type"] == "EXECUTION_ASSERTION" and entry.get("assert"):
            out.append(
                Threshold(
                    key=key,
                    level=Level.SLA,
                    kind=Kind.ASSERTION,
                    assertion=str(entry["assert"]),
                    behavior=entry.get("behavior", Behavior.NONE),
                    labels=labels,
                )
            )
    return out


def flow_thresholds(spec: Any) -> list[Threshold]:
    """The thresholds a flow sets itself: defaults of its ``SLA``/``SLO``
    inputs and its ``sla:`` list (each execution may still pass other inputs)."""
    defaults = {
        i["id"]: i.get("defaults")
        for i in getattr(spec, "inputs", [])
        if i.get("id") in (Level.SLA, Level.SLO)
    }
    return thresholds_for(None, defaults, getattr(spec, "sla", []))


@dataclass
class Candidate:
    rule: SlaRule
    # "applies"; "labels": applies instead to runs whose labels match (only
    # when the run's labels are not given); "no match": its label selector
    # does not match the given labels; "overridden": a more specific rule wins.
    status: str


def rules_for_flow(
    namespace: str,
    flow_id: str,
    labels: dict[str, Any] | None = None,
    rules: list[SlaRule] | None = None,
) -> list[Candidate]:
    """Every enabled duration rule covering the flow, most specific first,
    with what it does for its executions: the one function that decides
    which rule applies, for the engine's deadlines, the pages and the API.

    With ``labels`` (a run's labels), a rule whose selector matches them
    competes like any other and one whose selector does not is "no match".
    Without, a rule with a selector is "labels" (it would win for runs that
    carry them) and the winner is the most specific rule without selectors,
    which is what applies to a run without labels."""
    if rules is None:
        rules = list(SlaRule.objects.enabled().covering(namespace, flow_id))
    rules = [
        r
        for r in rules
        if r.enabled
        and r.sets_durations
        and (r.namespace == namespace or namespace.startswith(r.namespace + "."))
        and r.flow_id in ("", flow_id)
    ]
    rules.sort(key=lambda r: (r.specificity(), -(r.pk or 0)), reverse=True)
    out, winner = [], None
    for r in rules:
        if winner is not None:
            out.append(Candidate(r, "overridden"))
        elif r.labels and labels is None:
            out.append(Candidate(r, "labels"))
        elif r.labels and not r.matches_labels(labels):
            out.append(Candidate(r, "no match"))
        else:
            winner = r
            out.append(Candidate(r, "applies"))
    return out
