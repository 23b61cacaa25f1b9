"""Log levels, lowest first, and what a minimum level lets through.

``WARNING`` is accepted as another spelling of ``WARN`` (Python's and many
tools' name for it), both when a level is given and when lines are stored.
"""

from __future__ import annotations

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
ALIASES = {"WARNING": "WARN"}


def normalize(level: object) -> str:
    """The canonical name of ``level`` (any case, aliases allowed); ValueError
    naming the choices when it is none of them."""
    name = str(level).strip().upper()
    name = ALIASES.get(name, name)
    if name not in LEVELS:
        raise ValueError(f"unknown level {level}; use one of {', '.join(LEVELS)}")
    return name


def rank(level: str, default: int = LEVELS.index("INFO")) -> int:
    """Position of ``level`` in :data:`LEVELS` (``default`` for unknown names)."""
    try:
        return LEVELS.index(normalize(level))
    except ValueError:
        return default


def at_least(minimum: str) -> list[str]:
    """Every stored spelling at or above ``minimum``, for ``level__in``."""
    names = list(LEVELS[LEVELS.index(normalize(minimum)) :])
    return names + [alias for alias, name in ALIASES.items() if name in names]
