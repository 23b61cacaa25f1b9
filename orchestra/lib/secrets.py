"""Secrets from the environment, and masking them wherever text is shown.

Kestra's convention: ``secret('DB_PASSWORD')`` reads the environment variable
``SECRET_DB_PASSWORD``, whose value is base64-encoded (``echo -n pw | base64``)
so that any bytes survive the environment. ``SECRET_KEY`` and
``SECRET_KEY_FILE`` are Django's own settings and are never readable this way.

Every secret value the environment holds (decoded, at least MIN_MASKED
characters long) is replaced by ``******`` in log lines, task outputs and
errors before they are stored, so no page, API answer or CLI output shows it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Any

PREFIX = "SECRET_"
RESERVED = {"KEY", "KEY_FILE"}
MASK = "******"
MIN_MASKED = 4


class SecretError(ValueError):
    pass


def read_secret(name: str) -> str:
    """The decoded value of ``SECRET_<name>`` or SecretError naming what is wrong."""
    name = str(name)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SecretError(
            f"secret name {name!r} is not valid: use letters, digits and '_'"
        )
    if name.upper() in RESERVED:
        raise SecretError(
            f"secret({name!r}) is reserved: SECRET_{name} is the web server's "
            "own key; pick another name"
        )
    variable = PREFIX + name
    raw = os.environ.get(variable)
    if raw is None:
        raise SecretError(
            f"secret({name!r}) is not set: define the environment variable "
            f"{variable} (base64 of the value) on the workers"
        )
    try:
        return base64.b64decode(raw.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise SecretError(
            f"{variable} is not base64: store base64 of the value, e.g. "
            f"export {variable}=$(printf %s 'value' | base64)"
        ) from None


_cache: tuple[tuple, re.Pattern | None] | None = None


def _pattern() -> re.Pattern | None:
    global _cache
    items = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(PREFIX)))
    if _cache is not None and _cache[0] == items:
        return _cache[1]
    values = set()
    for key, raw in items:
        if key[len(PREFIX) :] in RESERVED:
            values.add(raw)
            continue
        try:
            values.add(base64.b64decode(raw.strip(), validate=True).decode("utf-8"))
        except (binascii.Error, ValueError):
            pass
        values.add(raw)
    values = {v for v in values if len(v) >= MIN_MASKED}
    # Longest first, so a secret containing another is masked whole.
    pattern = (
        re.compile(
            "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
        )
        if values
        else None
    )
    _cache = (items, pattern)
    return pattern


def mask(value: Any) -> Any:
    """``value`` with every secret replaced by ``******`` (through lists and dicts)."""
    pattern = _pattern()
    if pattern is None:
        return value
    return _mask(value, pattern)


def _mask(value: Any, pattern: re.Pattern) -> Any:
    if isinstance(value, str):
        return pattern.sub(MASK, value)
    if isinstance(value, list):
        return [_mask(v, pattern) for v in value]
    if isinstance(value, dict):
        return {k: _mask(v, pattern) for k, v in value.items()}
    return value
