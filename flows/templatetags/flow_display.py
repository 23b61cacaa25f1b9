"""How a flow's parts read on its page."""

from __future__ import annotations

from typing import Any

import yaml
from django import template

register = template.Library()

# Keys the validator adds to a trigger declaration for the engine's use.
_DERIVED = {"id", "type", "kind", "cron_normalized", "backfill_start"}


@register.filter
def trigger_settings(decl: dict[str, Any]) -> str:
    """A trigger's properties as the author would write them (YAML), without
    the ones derived for the engine or left empty."""
    shown = {
        key: value
        for key, value in decl.items()
        if key not in _DERIVED and value not in (None, [], {})
    }
    if not shown:
        return ""
    return yaml.safe_dump(
        shown, sort_keys=False, default_flow_style=False, allow_unicode=True
    ).strip()
