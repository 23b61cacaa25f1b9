"""Start a script's command: limits, user, and death with the worker.

Script tasks start this file as the leader of a new process group (inside
bubblewrap in the bwrap sandbox, see sandbox.py)::

    python -I -S procguard.py [--parent PID] [--user UID:GID] [--chdir DIR]
                              [--rlimit cpu|as|nproc|nofile=N ...] -- COMMAND...

It forks the command with the resource limits applied and, with ``--user``,
as that user. A kill or timeout ends the group from the worker (SIGTERM, then
SIGKILL). If the worker itself dies (OOM killer, SIGKILL, a lost pod):

- in bubblewrap, ``--die-with-parent`` and the PID namespace make the kernel
  end every process of the script at once;
- otherwise (``--parent``) the kernel signals this guard the moment the worker
  dies (``PR_SET_PDEATHSIG``, no polling) and it kills the whole group; the
  command itself also carries a SIGKILL death signal tied to the guard.

It starts on every script run, so it stays small: os, signal, sys and
resource (ctypes only when ``--parent`` asks for the death signal).
"""

import os
import signal
import sys

PR_SET_PDEATHSIG = 1
RLIMITS = {"cpu": "RLIMIT_CPU", "as": "RLIMIT_AS", "nproc": "RLIMIT_NPROC"}
RLIMITS["nofile"] = "RLIMIT_NOFILE"


def _usage(message: str) -> int:
    os.write(2, f"procguard: {message}\n".encode())
    return 2


def _parse(argv: list[str]):
    parent, user, limits, folder = None, None, [], None
    while argv and argv[0] != "--":
        option, value, argv = argv[0], argv[1] if len(argv) > 1 else "", argv[2:]
        if option == "--chdir":
            folder = value
        elif option == "--parent":
            parent = int(value)
        elif option == "--user":
            uid, gid = value.split(":")
            user = (int(uid), int(gid))
        elif option == "--rlimit":
            name, number = value.split("=")
            limits.append((RLIMITS[name], int(number)))
        else:
            raise ValueError(option)
    return parent, user, limits, folder, argv[1:]


def _death_signal(sig: int) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def _child(user, limits, folder, command, watch: bool, guard: int) -> None:
    import resource

    for name, value in limits:
        kind = getattr(resource, name)
        # CPU: SIGXCPU at the limit, SIGKILL a second later if it is caught.
        hard = value + 1 if name == "RLIMIT_CPU" else value
        resource.setrlimit(kind, (value, hard))
    if user is not None:
        os.setgroups([])
        os.setgid(user[1])
        os.setuid(user[0])
    if folder is not None:
        os.chdir(folder)
    if watch:
        # After setuid: a change of credentials clears the death signal.
        _death_signal(signal.SIGKILL)
        if os.getppid() != guard:
            os._exit(137)
    os.execvp(command[0], command)


def main(argv: list[str]) -> int:
    try:
        parent, user, limits, folder, command = _parse(argv)
    except (ValueError, KeyError, IndexError) as exc:
        return _usage(f"bad option {exc}")
    if not command:
        return _usage("usage: procguard.py [OPTIONS] -- COMMAND [ARG...]")
    # SIGTERM from a kill reaches the whole group; the guard outlives it to
    # report how the command ended (the worker's SIGKILL follows if needed).
    waited = {signal.SIGCHLD, signal.SIGTERM}
    if parent is not None:
        waited.add(signal.SIGHUP)
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    if parent is not None:
        _death_signal(signal.SIGHUP)
        if os.getppid() != parent:  # the worker died before the call above
            os.killpg(0, signal.SIGKILL)
    guard = os.getpid()
    pid = os.fork()
    if pid == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, waited)
        try:
            _child(user, limits, folder, command, parent is not None, guard)
        except OSError as exc:
            os.write(
                2, f"cannot start {command[0]!r}: {exc.strerror or exc}\n".encode()
            )
        os._exit(127)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        info = signal.sigwaitinfo(waited)
        if info.si_signo == signal.SIGHUP and os.getppid() != parent:
            os.killpg(0, signal.SIGKILL)  # the worker is gone; ends this guard too
    if os.WIFSIGNALED(status):
        # Die the way the command died, so the worker sees the same signal.
        code = os.WTERMSIG(status)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {code})
        signal.signal(code, signal.SIG_DFL)
        os.kill(os.getpid(), code)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
