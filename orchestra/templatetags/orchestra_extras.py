"""Small template filters shared by the dashboard pages."""

from __future__ import annotations

import json

from django import template

from orchestra.lib.durations import format_duration

register = template.Library()


@register.filter
def duration(value) -> str:
    """A timedelta (or seconds) as everywhere else: ``4.2s``, ``3m 05s``, ``—``."""
    return format_duration(value)


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
