"""Pebble names Kestra flows use that Jinja lacks, kept apart from
``expressions.py`` (which registers them) so each stays small.

Nothing here imports ``flows.expressions``: it imports this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jinja2 import pass_context


def _loop_path(context: Any) -> list[Any]:
    """The loop values of the current task run, outermost first."""
    path = [
        parent.get("taskrun", {}).get("value")
        for parent in reversed(list(context.get("parents") or []))
    ]
    taskrun = context.get("taskrun") or {}
    path.append(taskrun.get("value") if isinstance(taskrun, Mapping) else None)
    out: list[Any] = []
    for value in path:
        # A flowable inside an iteration carries the iteration's value too.
        if value is not None and (not out or out[-1] != value):
            out.append(value)
    return out


@pass_context
def current_each_output(context: Any, outputs: Any) -> Any:
    """Kestra's ``currentEachOutput(outputs.t)``: the outputs of ``t`` for
    the iteration(s) the current task run is in."""
    found = outputs
    for value in _loop_path(context):
        if isinstance(found, Mapping) and value in found:
            found = found[value]
    return found


def is_json(value: Any) -> bool:
    """Kestra's ``is json`` test: text that parses as JSON."""
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


GLOBALS = {"currentEachOutput": current_each_output}
TESTS = {"json": is_json}
FILTERS: dict[str, Any] = {}
