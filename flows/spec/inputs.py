"""Typed flow inputs: declaration checks and conversion of supplied values."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlparse

from flows.limits import compile_regex
from orchestra.lib import nesting
from orchestra.lib.dates import parse_datetime
from orchestra.lib.durations import parse_duration, to_iso
from orchestra.lib.yamlmarks import load_bounded

INPUT_TYPES = (
    "STRING",
    "INT",
    "FLOAT",
    "BOOLEAN",
    "BOOL",
    "DATE",
    "DATETIME",
    "TIME",
    "DURATION",
    "JSON",
    "SELECT",
    "ENUM",
    "MULTISELECT",
    "ARRAY",
    "URI",
    "FILE",
    "SECRET",
    "EMAIL",
    "YAML",
)


class InputError(ValueError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"input '{k}': {v}" for k, v in errors.items()))


_EMAIL = compile_regex(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _parse_json(value: Any, what: str) -> Any:
    if isinstance(value, str):
        try:
            return nesting.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"not valid JSON for {what} ({exc.msg}, char {exc.pos})"
            ) from None
    return value


def convert(decl: dict[str, Any], value: Any) -> Any:
    """Convert one supplied value to the declared type; ValueError if it does not fit."""
    kind = str(decl.get("type", "STRING")).upper()
    if kind in ("STRING", "SECRET", "EMAIL"):
        if isinstance(value, dict | list):
            raise ValueError("expected text, got a structure")
        text = str(value)
        validator = decl.get("validator")
        # RE2 (linear time): a value cannot make a validator backtrack for hours.
        if validator and not compile_regex(validator).fullmatch(text):
            raise ValueError(f"{text!r} does not match the pattern {validator!r}")
        if kind == "EMAIL" and not _EMAIL.fullmatch(text):
            raise ValueError(f"{text!r} is not an email address")
        return text
    if kind == "INT":
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got {value!r}")
        try:
            number = (
                int(value)
                if not isinstance(value, float) or value.is_integer()
                else None
            )
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise ValueError(f"expected an integer, got {value!r}")
        return _bounds(decl, number)
    if kind == "FLOAT":
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            return _bounds(decl, float(value))
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
    if kind in ("BOOLEAN", "BOOL"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if kind == "DATE":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value.isoformat()
        try:
            return date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise ValueError(f"{value!r} is not a date such as 2026-01-31") from None
    if kind == "DATETIME":
        return parse_datetime(value).isoformat().replace("+00:00", "Z")
    if kind == "TIME":
        try:
            return time.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise ValueError(f"{value!r} is not a time such as 09:30:00") from None
    if kind == "DURATION":
        return to_iso(parse_duration(value))
    if kind == "JSON":
        return _parse_json(value, "a JSON input")
    if kind == "YAML":
        return load_bounded(value) if isinstance(value, str) else value
    if kind in ("SELECT", "ENUM"):
        options = [str(v) for v in decl.get("values") or []]
        text = str(value)
        if options and text not in options and not decl.get("allowCustomValue"):
            raise ValueError(f"{text!r} is not one of: {', '.join(options)}")
        return text
    if kind == "MULTISELECT":
        items = (
            _parse_json(value, "a MULTISELECT input")
            if isinstance(value, str) and value.strip().startswith("[")
            else value
        )
        if isinstance(items, str):
            items = [part.strip() for part in items.split(",") if part.strip()]
        if not isinstance(items, list):
            raise ValueError("expected a list of choices")
        options = [str(v) for v in decl.get("values") or decl.get("options") or []]
        bad = [str(i) for i in items if options and str(i) not in options]
        if bad and not decl.get("allowCustomValue"):
            raise ValueError(f"{', '.join(bad)} not among: {', '.join(options)}")
        return [str(i) for i in items]
    if kind == "ARRAY":
        items = _parse_json(value, "an ARRAY input")
        if not isinstance(items, list):
            raise ValueError("expected a JSON array such as [1, 2, 3]")
        item_type = decl.get("itemType")
        if item_type:
            converted = []
            for index, item in enumerate(items):
                try:
                    converted.append(convert({"type": item_type}, item))
                except ValueError as exc:
                    raise ValueError(f"item {index}: {exc}") from None
            return converted
        return items
    if kind == "URI":
        text = str(value)
        if not urlparse(text).scheme:
            raise ValueError(
                f"{text!r} is not a URI (it has no scheme such as https://)"
            )
        return text
    if kind == "FILE":
        text = str(value)
        if not text.startswith("kestra://"):
            raise ValueError("expected an uploaded file (a kestra:// storage URI)")
        return text
    raise ValueError(f"unknown input type {kind}")


def _bounds(decl: dict[str, Any], number: int | float) -> int | float:
    low, high = decl.get("min"), decl.get("max")
    if low is not None and number < low:
        raise ValueError(f"{number} is below the minimum {low}")
    if high is not None and number > high:
        raise ValueError(f"{number} is above the maximum {high}")
    return number


def resolve_inputs(
    declared: list[dict[str, Any]],
    supplied: dict[str, Any],
    *,
    require_booleans: bool = False,
) -> dict[str, Any]:
    """Return the execution's inputs: converted values and defaults.

    A missing BOOLEAN is taken as null (a flow's unchecked box) unless
    ``require_booleans``: a person's answer (a Pause's ``onResume``) must be
    given, or one click would take the "no" branch for them.
    Raises InputError listing every problem (missing, mistyped, unknown).
    """
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    known = {d["id"] for d in declared}
    for name in supplied:
        if name not in known:
            hint = ", ".join(sorted(known)) or "none"
            errors[name] = f"this flow has no such input (inputs: {hint})"
    for decl in declared:
        name = decl["id"]
        if name in supplied and supplied[name] not in (None, ""):
            raw = supplied[name]
        elif decl.get("defaults") is not None:
            raw = decl["defaults"]
        else:
            kind = str(decl.get("type", "")).upper()
            if decl.get("required", True) and (
                require_booleans or kind not in ("BOOLEAN", "BOOL")
            ):
                errors[name] = (
                    f"required {str(decl.get('type', 'STRING')).upper()} input is missing"
                )
            else:
                values[name] = None
            continue
        try:
            values[name] = convert(decl, raw)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise InputError(errors)
    return values
