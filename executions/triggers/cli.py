"""``orchestra flows backfill`` and ``orchestra flows triggers``."""

from __future__ import annotations

import argparse
import sys

from django.db.models import Q

from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError
from executions.models import Trigger
from executions.triggers.schedule import backfill as run_backfill
from flows.expressions import format_native
from orchestra.lib.output import (
    add_label_option,
    label_options,
    parse_pairs,
    print_json,
    table,
)


def register(group, groups=None) -> None:
    flows = group("flows", "validate, deploy, list, run and test flows")
    p = flows.add_parser(
        "backfill",
        help="run a Schedule trigger's dates of a past (or future) range now",
        description="Create one execution per cron date from --start to --end (inclusive). "
        "Dates that fired already are skipped, so running it twice is safe.",
    )
    p.add_argument("--namespace", "-n", required=True)
    p.add_argument("--flow", "-f", required=True)
    p.add_argument("--trigger", "-t", required=True, help="the Schedule trigger's id")
    p.add_argument(
        "--start",
        required=True,
        help="ISO date or datetime; without an offset, in the trigger's time zone",
    )
    p.add_argument(
        "--end",
        required=True,
        help="ISO date or datetime (inclusive: a date includes that whole day)",
    )
    p.add_argument(
        "--input",
        "-i",
        action="append",
        metavar="KEY=VALUE",
        help="override an input of the trigger",
    )
    add_label_option(p)
    p.add_argument(
        "--dry-run", action="store_true", help="list the dates, start nothing"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=backfill)

    p = flows.add_parser(
        "triggers", help="list triggers with their next and last dates"
    )
    p.add_argument("--namespace", "-n", help="only this namespace and its children")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_triggers)


def backfill(args: argparse.Namespace) -> int:
    try:
        report = run_backfill(
            args.namespace,
            args.flow,
            args.trigger,
            args.start,
            args.end,
            inputs=parse_pairs(args.input, "--input"),
            labels=label_options(args.label),
            actor=Actor.cli(),
            dry_run=args.dry_run,
        )
    except ActionError as exc:
        print(f"✘ {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json({"dry_run": args.dry_run, **report.as_dict()})
        return 1 if report.failed else 0
    done = set(report.existing)
    if args.dry_run:
        for date in report.dates:
            note = "  (already fired)" if date in done else ""
            print(f"  {format_native(date)}{note}")
        print(report.summary(dry_run=True))
        return 0
    for date, execution_id in report.created:
        print(f"✓ {format_native(date)}: execution {execution_id}")
    for date, reason in report.failed:
        print(f"✘ {format_native(date)}: {reason}", file=sys.stderr)
    print(report.summary(dry_run=False))
    return 1 if report.failed else 0


def list_triggers(args: argparse.Namespace) -> int:
    qs = Trigger.objects.all()
    if args.namespace:
        qs = qs.filter(
            Q(namespace=args.namespace) | Q(namespace__startswith=args.namespace + ".")
        )
    rows = [
        {
            "namespace": t.namespace,
            "flow": t.flow_id,
            "trigger": t.trigger_id,
            "kind": t.kind,
            "disabled": t.disabled,
            "cron": t.cron,
            "timezone": t.time_zone,
            "next": format_native(t.next_date) if t.next_date else None,
            "last": format_native(t.last_date) if t.last_date else None,
        }
        for t in qs
    ]
    if args.json:
        print_json(rows)
    elif not rows:
        print("No triggers.")
    else:
        print(
            table(
                [
                    [
                        r["namespace"],
                        r["flow"],
                        r["trigger"],
                        r["kind"],
                        "yes" if r["disabled"] else "",
                        r["cron"],
                        r["next"] or "",
                        r["last"] or "",
                    ]
                    for r in rows
                ],
                [
                    "NAMESPACE",
                    "FLOW",
                    "TRIGGER",
                    "KIND",
                    "DISABLED",
                    "CRON",
                    "NEXT",
                    "LAST",
                ],
            )
        )
    return 0
