"""Small helpers for task tests."""

from __future__ import annotations

import os
import time
from pathlib import Path


def flow(
    tasks: str, extra: str = "", flow_id: str = "t", namespace: str = "tests.tasks"
) -> str:
    return f"id: {flow_id}\nnamespace: {namespace}\n{extra}tasks:\n{tasks}"


def indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines()) + "\n"


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return False
