"""Dotted keys as nested mappings: ``{"a.b": 1}`` → ``{"a": {"b": 1}}``.

Kestra lets an input id hold dots (``nested.string``) and reads it back as
``inputs.nested.string``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Nest dotted keys. A key that would replace a plain value already there
    (``a`` and ``a.b`` both given) stays as written, flat."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if "." not in key:
            if key not in out:
                out[key] = value
            continue
        *path, last = key.split(".")
        node = out
        for part in path:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                node = None
                break
            node = child
        if node is None or last in node:
            out[key] = value
        else:
            node[last] = value
    return out
