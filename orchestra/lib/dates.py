"""Reading a moment in time the way flows, inputs and filters write it."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Any

EXAMPLE = "2026-01-31T09:30:00Z"


def parse_datetime(value: Any, *, naive: tzinfo = UTC, epoch: bool = False) -> datetime:
    """An aware datetime from a datetime, a date (its midnight) or ISO-8601
    text (``Z`` allowed, a bare date is its midnight). A moment without a
    zone is taken in ``naive``. With ``epoch``, numbers are epoch seconds (or
    milliseconds when too large for seconds). ValueError otherwise."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif epoch and isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    else:
        text = str(value).strip().replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO-8601 date or datetime such as {EXAMPLE}"
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=naive)
