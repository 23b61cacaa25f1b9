"""Small helpers for command-line output."""

from __future__ import annotations

import json
import sys
from typing import Any

from orchestra.lib.labels import LabelError, parse_labels


class UsageError(Exception):
    """Bad command-line usage: printed, exit code 2 (``orchestra.cli.main``)."""


def print_json(value: Any) -> None:
    sys.stdout.write(
        json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n"
    )


def table(rows: list[list[Any]], headers: list[str]) -> str:
    cells = [[str(h) for h in headers]] + [
        ["" if c is None else str(c) for c in r] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


LABEL_HELP = "a label, key:value (key=value is read too); repeat for several"


def add_label_option(parser) -> None:
    """The ``--label`` option of the commands that start executions."""
    parser.add_argument(
        "--label", "-l", action="append", metavar="KEY:VALUE", help=LABEL_HELP
    )


def label_options(values: list[str] | None) -> dict[str, str]:
    """The ``--label`` values: one label each, so a value may hold commas."""
    try:
        return parse_labels(values, split=False)
    except LabelError as exc:
        raise UsageError(f"--label: {exc}") from None


def parse_pairs(pairs: list[str] | None, what: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` → ``{"a": "1", "b": "x=y"}``; UsageError on bad items."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {pair!r} must look like key=value")
        out[key] = value
    return out
