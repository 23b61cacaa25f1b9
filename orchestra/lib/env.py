"""Typed readers for environment variables.

Each helper raises ``ImproperlyConfigured`` naming the variable, so a bad value
stops the process at start with a message an operator can act on.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off"
    )


def envint(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def envfloat(name: str, default: float, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def envsecret(name: str, default: str = "") -> str:
    """Read NAME, or the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r}: {exc}") from None
    return os.environ.get(name, default)


def envurl(name: str, default: str, schemes: set[str]) -> str:
    raw = os.environ.get(name) or default
    try:
        scheme = urlparse(raw).scheme
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 address
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a valid URL: {exc}"
        ) from None
    if scheme not in schemes:
        known = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(
            f"{name}={hide_password(raw)!r} has an unsupported scheme {scheme!r}; "
            f"expected one of: {known}"
        )
    return raw


def hide_password(url: str) -> str:
    """The URL as it may be printed: an error message must not leak a password."""
    password = urlparse(url).password
    return url.replace(f":{password}@", ":***@", 1) if password else url
