"""``orchestra sla ...``: run the sweep, list rules and misses."""

from __future__ import annotations

import argparse

from orchestra.lib.durations import format_duration
from orchestra.lib.output import UsageError, print_json, table
from sla.models import SlaMiss, SlaRule
from sla.presenters import miss_as_dict, rule_as_dict, state_now_and_then
from sla.sweep import run


def register(group, groups) -> None:
    sla = group("sla", "SLA/SLO rules, misses and the sweep")
    p = sla.add_parser(
        "check",
        help="run the SLA sweep once: record misses, apply breach actions, send the digest",
    )
    p.add_argument("--no-email", action="store_true", help="send no email this time")
    p.add_argument(
        "--json", action="store_true", help="print counts and new misses as JSON"
    )
    p.set_defaults(func=check)

    p = sla.add_parser(
        "rules", help="list SLA rules, most specific first per namespace"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=rules)

    p = sla.add_parser("misses", help="recent SLA misses, newest first")
    p.add_argument("--namespace", "-n")
    p.add_argument("--level", choices=["SLO", "SLA"], type=str.upper)
    p.add_argument("--limit", type=int, default=25)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=misses)


def _miss_rows(misses) -> list[list]:
    return [
        [
            m.level,
            f"{m.namespace}.{m.flow_id or '*'}",
            m.execution_id or "—",
            m.threshold_text,
            m.duration_text,
            state_now_and_then(m),
            m.source,
            m.action or "—",
        ]
        for m in misses
    ]


def _json_or_empty(args, items: list, as_dict, empty: str) -> bool:
    """Print JSON, or the empty message; True when nothing else is to print."""
    if args.json:
        print_json([as_dict(item) for item in items])
        return True
    if not items:
        print(empty)
        return True
    return False


MISS_HEADERS = [
    "LEVEL",
    "FLOW",
    "EXECUTION",
    "THRESHOLD",
    "DURATION",
    "STATE",
    "SOURCE",
    "ACTION",
]


def check(args: argparse.Namespace) -> int:
    from django.utils import timezone

    now = timezone.now()
    result = run(now=now, send=not args.no_email)
    new = list(
        SlaMiss.objects.filter(detected_at=now)
        .select_related("rule", "execution")
        .order_by("id")
    )
    if args.json:
        print_json({**result.as_dict(), "newMisses": [miss_as_dict(m) for m in new]})
        return 0
    print(f"SLA sweep: {result}")
    if new:
        print(table(_miss_rows(new), MISS_HEADERS))
    return 0


def rules(args: argparse.Namespace) -> int:
    items = list(SlaRule.objects.all())
    if _json_or_empty(
        args,
        items,
        rule_as_dict,
        "No SLA rules. Create one on the SLA page of the dashboard or with the API.",
    ):
        return 0
    print(
        table(
            [
                [
                    r.pk,
                    r.name,
                    r.scope,
                    format_duration(r.slo) if r.slo else "—",
                    format_duration(r.sla) if r.sla else "—",
                    f"≥{r.expected_runs} per '{r.expected_cron}'"
                    if r.expected_cron
                    else "—",
                    r.on_breach,
                    ", ".join(r.recipient_list) or "—",
                    "yes" if r.enabled else "no",
                ]
                for r in items
            ],
            [
                "ID",
                "NAME",
                "APPLIES TO",
                "SLO",
                "SLA",
                "EXPECTED RUNS",
                "ON BREACH",
                "RECIPIENTS",
                "ENABLED",
            ],
        )
    )
    return 0


def misses(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    qs = SlaMiss.objects.select_related("rule", "execution")
    if args.namespace:
        qs = qs.in_namespace(args.namespace)
    if args.level:
        qs = qs.filter(level=args.level)
    items = list(qs.order_by("-id")[: args.limit])
    if not _json_or_empty(args, items, miss_as_dict, "No SLA misses."):
        print(table(_miss_rows(items), MISS_HEADERS))
    return 0
