"""Labels, read and shown one way everywhere: ``key:value``.

``key=value`` is read too (the command line and the SLA forms took it once),
so a label is cut at its first ``:`` or ``=``; everything after is the value.
Flow files and JSON bodies give labels as a mapping or, as Kestra does, as a
list of ``{key, value}`` items; :func:`label_map` reads those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SYNTAX = "key:value"
EXAMPLE = "env:prod"


class LabelError(ValueError):
    """A label that cannot be read; ``index`` is its place in a list, if any."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def parse_label(text: str) -> tuple[str, str]:
    """``"env:prod"`` (or ``"env=prod"``) → ``("env", "prod")``."""
    item = str(text).strip()
    cuts = [i for i in (item.find(":"), item.find("=")) if i >= 0]
    key = item[: min(cuts)].strip() if cuts else ""
    if not key:
        raise LabelError(f"label {item!r} must be {SYNTAX}, e.g. {EXAMPLE}")
    return key, item[min(cuts) + 1 :].strip()


def parse_labels(
    values: str | Iterable[str] | None, *, split: bool = True
) -> dict[str, str]:
    """Labels typed as text: one string or several. With ``split``, each may
    hold several labels separated by commas or new lines; without, each is
    one label whose value may contain commas (``--label`` on the CLI)."""
    if values is None:
        return {}
    if isinstance(values, str):
        values = [values]
    labels: dict[str, str] = {}
    for raw in values:
        items = str(raw).replace("\n", ",").split(",") if split else [raw]
        for item in items:
            if str(item).strip():
                key, value = parse_label(item)
                labels[key] = value
    return labels


def label_map(value: Any) -> dict[str, str]:
    """Labels given as data: a mapping, a list of ``{key, value}`` items or of
    ``key:value`` texts. Values become text."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        out: dict[str, str] = {}
        for index, item in enumerate(value):
            if isinstance(item, Mapping) and "key" in item:
                out[str(item["key"])] = str(item.get("value", ""))
            elif isinstance(item, str):
                try:
                    out.update(parse_labels(item))
                except LabelError as exc:
                    raise LabelError(str(exc), index) from None
            else:
                raise LabelError("a label in a list needs 'key' and 'value'", index)
        return out
    raise LabelError(f"labels must be a mapping, got {type(value).__name__}")


def format_labels(labels: Mapping[str, Any] | None) -> str:
    """``{"env": "prod", "team": "data"}`` → ``"env:prod, team:data"``."""
    return ", ".join(f"{k}:{v}" for k, v in (labels or {}).items())


# Labels only the engine sets (Kestra's ``Label.SYSTEM_PREFIX``).
SYSTEM_PREFIX = "system."
CORRELATION_ID = SYSTEM_PREFIX + "correlationId"
READ_ONLY = SYSTEM_PREFIX + "readOnly"


def system_labels(labels: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``system.*`` labels of ``labels`` (what a subflow inherits)."""
    return {k: v for k, v in (labels or {}).items() if k.startswith(SYSTEM_PREFIX)}


def expression_labels(labels: Mapping[str, Any] | None) -> dict[str, Any]:
    """``labels`` as expressions read them: ``system.*`` labels grouped under
    ``system`` (``labels.system.correlationId``), the others by their key."""
    out: dict[str, Any] = {}
    system: dict[str, Any] = {}
    for key, value in (labels or {}).items():
        if key.startswith(SYSTEM_PREFIX):
            system[key[len(SYSTEM_PREFIX) :]] = value
        else:
            out[key] = value
    if system:
        out["system"] = system
    return out
