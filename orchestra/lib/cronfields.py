"""Say which field of a cron expression is out of range (croniter only says
"invalid")."""

from __future__ import annotations

import re

# Name, lowest, highest — in the order of a five-field expression.
FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
SECONDS = ("second", 0, 59)


def out_of_range(fields: list[str]) -> str | None:
    """The first number outside its field's range, as a sentence, or None.

    ``fields`` are five (minute first) or six (seconds first, Kestra's form).
    Steps (``*/90``) are not values and are left to croniter.
    """
    names = (SECONDS, *FIELDS) if len(fields) == 6 else FIELDS
    for (name, low, high), text in zip(names, fields, strict=False):
        for part in text.split(","):
            values = part.split("/", 1)[0]
            for number in re.findall(r"\d+", values.split("#", 1)[0]):
                if not low <= int(number) <= high:
                    return f"{name} {number} is out of range ({low}-{high})"
    return None
