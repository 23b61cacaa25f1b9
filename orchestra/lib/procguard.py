"""Run a command and take its whole process group down if our parent dies.

Script tasks start this file as the leader of a new process group:
``python -I -S procguard.py <command...>``. A kill or timeout ends the group
from the worker (SIGTERM, then SIGKILL). But if the worker itself dies (OOM
killer, SIGKILL, a lost pod), nobody would end the group and the script would
keep running while the task is retried elsewhere; this guard notices that its
parent is gone and kills the group.

It starts on every script run, so it stays tiny: no imports beyond os, signal
and sys (no ``subprocess``), and it sleeps in ``sigtimedwait`` so the
command's exit wakes it at once.
"""

import os
import signal
import sys

POLL = 0.5  # seconds between parent checks


def main(argv: list[str]) -> int:
    if not argv:
        os.write(2, b"usage: procguard.py COMMAND [ARG...]\n")
        return 2
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    pid = os.fork()
    if pid == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            os.write(2, f"cannot start {argv[0]!r}: {exc.strerror or exc}\n".encode())
        os._exit(127)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if os.getppid() != parent:
            os.killpg(0, signal.SIGKILL)  # ends this guard too
        signal.sigtimedwait({signal.SIGCHLD}, POLL)
    if os.WIFSIGNALED(status):
        # Die the way the command died, so the worker sees the same signal.
        code = os.WTERMSIG(status)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {code})
        signal.signal(code, signal.SIG_DFL)
        os.kill(os.getpid(), code)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
