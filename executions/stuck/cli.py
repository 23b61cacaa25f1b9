"""``orchestra cleanup``: find and cancel stuck executions.

Same contract as NoETL's ``cleanup`` (flags, defaults, JSON keys), decided by
executions.stuck.detect: executions whose worker is alive are never listed.
"""

from __future__ import annotations

import argparse
import sys

from executions.lifecycle.actor import Actor
from executions.stuck.cleanup import MAX_CAP, MAX_MINUTES, run_cleanup
from executions.stuck.serializers import CleanupOut
from orchestra.lib.output import print_json
from orchestra.lib.shapes import shaped

RULE = "=" * 60


def _bounded(high: int, what: str):
    def parse(value: str) -> int:
        number = _at_least_one(value)
        if number > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}{what}")
        return number

    return parse


def _at_least_one(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number, got {value!r}"
        ) from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def register(group, groups) -> None:
    p = groups.add_parser(
        "cleanup",
        help="find and cancel stuck executions (preview with --dry-run)",
        description="Cancel executions that are stuck: orphaned by a dead worker, stalled "
        "with no progress, or never picked up. Executions whose worker is alive, paused, "
        "scheduled, queued or waiting on a live child are spared and listed apart.",
    )
    p.add_argument(
        "--older-than-minutes",
        type=_bounded(MAX_MINUTES, " (ten years)"),
        default=5,
        metavar="N",
        help="minimum age and minimum time without progress (default: 5, minimum: 1)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would be cancelled without cancelling",
    )
    p.add_argument(
        "--json", action="store_true", help="print the result as one JSON object"
    )
    p.add_argument(
        "--namespace", "-n", default="", help="only this namespace and its children"
    )
    p.add_argument("--flow", "-f", default="", help="only executions of this flow id")
    p.add_argument(
        "--max",
        type=_bounded(MAX_CAP, ""),
        default=None,
        metavar="N",
        help="cancel at most N executions (oldest first)",
    )
    p.set_defaults(func=cleanup)


def cleanup(args: argparse.Namespace) -> int:
    result = run_cleanup(
        older_than_minutes=args.older_than_minutes,
        dry_run=args.dry_run,
        namespace=args.namespace,
        flow=args.flow,
        max_count=args.max,
        actor=Actor.cli(),
    )
    if args.json:
        print_json(shaped(CleanupOut, result))  # the REST answer's shape
        return 0
    _print_human(result, args)
    return 0


def _print_human(result: dict, args: argparse.Namespace) -> None:
    dry = args.dry_run
    tag = "[DRY RUN] " if dry else ""
    out = sys.stdout.write
    out(f"{RULE}\n{tag}Cleanup Stuck Executions\n{RULE}\n")
    minutes = "minute" if args.older_than_minutes == 1 else "minutes"
    out(f"Older than: {args.older_than_minutes} {minutes}\n")
    if args.namespace or args.flow:
        scope = " ".join(
            x
            for x in (
                f"namespace {args.namespace}" if args.namespace else "",
                f"flow {args.flow}" if args.flow else "",
            )
            if x
        )
        out(f"Scope: {scope}\n")
    found = result["cancelled_count"] + len(result["skipped"]) + result["beyond_cap"]
    out(f"Found: {found} stuck execution(s)\n")
    out(f"{tag}{result['message']}\n")
    if result["execution_ids"]:
        out("Execution IDs:\n")
        for row in result["stuck"]:
            worker = f" [worker {row['worker']}]" if row["worker"] else ""
            out(
                f"  - {row['id']}  {row['namespace']}.{row['flow_id']}  {row['kind']}: "
                f"{row['reason']}{worker}\n"
            )
    if result["skipped"]:
        out("Skipped (changed since the preview):\n")
        for row in result["skipped"]:
            out(f"  - {row['id']}  {row['reason']}\n")
    if result["spared_count"]:
        out(f"Spared: {result['spared_count']} execution(s) not stuck\n")
        for row in result["spared"][:20]:
            out(f"  - {row['id']}  {row['flow']}  {row['kind']}: {row['reason']}\n")
        if result["spared_count"] > 20:
            out(f"  ... and {result['spared_count'] - 20} more (see --json)\n")
    if dry and result["execution_ids"]:
        out("Note: Run without --dry-run to actually cancel these executions\n")
    out(f"{RULE}\n")
