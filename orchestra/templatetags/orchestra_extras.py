"""Small template filters shared by the dashboard pages."""

from __future__ import annotations

import json

from django import template

from orchestra.lib.durations import format_duration
from orchestra.lib.labels import format_labels

register = template.Library()


@register.filter
def duration(value) -> str:
    """A timedelta (or seconds) as everywhere else: ``4.2s``, ``3m 05s``, ``—``."""
    return format_duration(value)


@register.filter
def labels(value) -> str:
    """A label mapping as everywhere else: ``env:prod, team:data``."""
    return format_labels(value)


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@register.simple_tag
def admin_password_file() -> str:
    """Where local mode keeps the admin password: under ORCHESTRA_HOME,
    wherever that is (``~`` spelled as such when it is the user's home)."""
    from pathlib import Path

    from django.conf import settings

    path = Path(settings.ORCHESTRA_HOME) / "admin-password"
    home = Path.home()
    if path.is_relative_to(home):
        return f"~/{path.relative_to(home)}"
    return str(path)
