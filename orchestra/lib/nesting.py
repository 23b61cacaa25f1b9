"""Nesting bounds for data users send (JSON bodies, JSON inputs).

Python's json module recurses: ``[[[[…]]]]`` a few thousand deep raises
RecursionError (not a ValueError), and a structure a few hundred deep still
makes every later ``json.dumps``, ``copy.deepcopy`` or template walk recurse.
Such data is refused with a ValueError that says why.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class TooDeep(ValueError):
    pass


def check_depth(value: Any, limit: int = MAX_DEPTH) -> Any:
    """``value`` itself, or TooDeep when lists/mappings nest deeper than ``limit``."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            raise TooDeep(f"nested more than {limit} levels deep")
        stack.extend((child, depth + 1) for child in children)
    return value


def loads(text: str | bytes, limit: int = MAX_DEPTH) -> Any:
    """``json.loads`` that raises ValueError (never RecursionError) for data
    nested deeper than ``limit``."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(f"nested more than {limit} levels deep") from None
    return check_depth(value, limit)


def contains_nul(value: Any) -> bool:
    """True when a text inside ``value`` (keys too) holds a NUL character,
    which PostgreSQL cannot store in text or JSON."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False
