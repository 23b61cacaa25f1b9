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


def pids_with_env(marker: str) -> list[int]:
    """Host pids of the processes whose environment holds ``marker`` (a
    script's ``env:`` value reaches its children too). Works whatever the
    script sandbox: a PID namespace hides host pids from the script itself."""
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_all_gone(pids: list[int], timeout: float = 10) -> list[int]:
    """The pids still running after ``timeout`` (empty when all are gone)."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if not process_gone(pid)]
        if left:
            time.sleep(0.05)
    return left
