"""Durations as users write them: ISO-8601 (``PT1H30M``, ``P1D``) or short
forms (``45m``, ``1h30m``, ``10s``, ``250ms``, ``2d``)."""

from __future__ import annotations

import re
from datetime import timedelta

_ISO = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_SHORT_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s|w)", re.IGNORECASE)
_SHORT_UNITS = {
    "ms": "milliseconds",
    "s": "seconds",
    "m": "minutes",
    "h": "hours",
    "d": "days",
    "w": "weeks",
}

HELP = "use ISO-8601 such as PT1H30M or P1D, or a short form such as 45m, 1h30m, 10s"


# A hundred years: longer durations mean nothing here and overflow dates.
MAX_DAYS = 36_525


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Return the duration as a timedelta; raise ValueError saying what is wrong."""
    try:
        delta = _parse(text)
    except OverflowError:
        delta = timedelta.max
    if abs(delta) > timedelta(days=MAX_DAYS):
        raise ValueError(f"{str(text)[:40]!r} is longer than {MAX_DAYS // 365} years")
    return delta


def _parse(text: str | int | float | timedelta) -> timedelta:
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration; {HELP}")
    if isinstance(text, int | float):
        # Bare numbers are seconds, as in most schedulers' configuration files.
        return timedelta(seconds=text)
    raw = str(text).strip()
    if not raw:
        raise ValueError(f"empty duration; {HELP}")
    match = _ISO.match(raw)
    if match and raw.upper() not in ("P", "PT") and not raw.upper().endswith("T"):
        parts = {k: float(v) for k, v in match.groupdict().items() if v}
        return timedelta(**parts)
    pos = 0
    parts: dict[str, float] = {}
    compact = raw.replace(" ", "")
    for part in _SHORT_PART.finditer(compact):
        if part.start() != pos:
            break
        unit = _SHORT_UNITS[part.group(2).lower()]
        parts[unit] = parts.get(unit, 0) + float(part.group(1))
        pos = part.end()
    if parts and pos == len(compact):
        return timedelta(**parts)
    raise ValueError(f"{raw!r} is not a duration; {HELP}")


def format_duration(delta: timedelta | float | str | None) -> str:
    """The one way a duration is shown, in the CLI, the pages and the emails:
    ``120ms``, ``4.2s``, ``42s``, ``3m 05s``, ``2h 01m``, ``3d 04h``. Seconds
    may be given as a number; a missing duration is ``—``."""
    if delta is None or delta == "":
        return "—"
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 0:
        seconds = 0
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{int(seconds)}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def to_iso(delta: timedelta) -> str:
    total = delta.total_seconds()
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    out = "P"
    if days:
        out += f"{int(days)}D"
    time = ""
    if hours:
        time += f"{int(hours)}H"
    if minutes:
        time += f"{int(minutes)}M"
    if seconds or not (days or time):
        time += f"{seconds:g}S"
    return out + ("T" + time if time else "")
