"""Run a command and take its whole process group down if our parent dies.

Script tasks start this file as the leader of a new process group:
``python -I procguard.py <command...>``. A kill or timeout ends the group from
the worker (SIGTERM, then SIGKILL). But if the worker itself dies (OOM killer,
SIGKILL, a lost pod), nobody would end the group and the script would keep
running while the task is retried elsewhere; this guard notices that its
parent is gone and kills the group. Standard library only, no imports from
the project: it runs in an isolated interpreter.
"""

import os
import signal
import subprocess
import sys

POLL = 0.5  # seconds between parent checks


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: procguard.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    parent = os.getppid()
    try:
        proc = subprocess.Popen(argv)
    except OSError as exc:
        print(f"cannot start {argv[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    while True:
        try:
            code = proc.wait(POLL)
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                os.killpg(0, signal.SIGKILL)  # ends this guard too
    if code < 0:
        # Die the way the command died, so the worker sees the same signal.
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
