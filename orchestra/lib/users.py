"""The operating-system user behind a command."""

from __future__ import annotations

import getpass


def os_username() -> str:
    """Who runs this process, as commands record it (``cli`` when unknown)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 — no passwd entry in some containers
        return "cli"
