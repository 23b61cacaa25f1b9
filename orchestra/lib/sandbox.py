"""Where a script task's process runs, and what it may use.

A script is user code: it must not reach the worker's environment, memory or
files, other executions' working folders or the internal storage. Three modes
(``ORCHESTRA_SCRIPT_SANDBOX``), strongest first:

- ``bwrap``: Debian's bubblewrap puts the script in new PID, mount, IPC and
  UTS namespaces (and a network namespace with ``ORCHESTRA_SCRIPT_NETWORK=none``).
  It sees a fresh ``/proc`` holding only its own processes, a private ``/tmp``,
  the system folders and the worker's Python read-only, and its working folder
  as the only writable place. Nothing else of the machine is mounted.
- ``user``: the script runs as another OS user (``ORCHESTRA_SCRIPT_USER``);
  the kernel's file permissions and ptrace rules keep it from the worker's
  ``/proc/<pid>/environ``, memory and 0700 folders. It still sees every
  world-readable file and every process (not their environments).
- ``none``: the script runs as the worker's user and can read all it can.

``auto`` (the default) picks bwrap when it works here, else ``user`` when the
worker runs as root, else ``none``. In ``bwrap`` and ``user`` modes a worker
running as root never runs scripts as root: they run as
``ORCHESTRA_SCRIPT_USER`` (``nobody`` when unset). ``none`` is exactly the
worker's user, root included, and says so loudly at start.

Each script also gets resource limits (setrlimit in the child, see
``procguard.py``) and an output cap enforced by the reader of its pipes.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from orchestra.lib import procguard

MODES = ("auto", "bwrap", "user", "none")
NETWORKS = ("host", "none")
GUARD = str(Path(procguard.__file__).resolve())
DEFAULT_ROOT_USER = "nobody"
# Top-level system folders a script sees read-only in bwrap mode (symlinks of
# a merged /usr are recreated as symlinks).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


@dataclass(frozen=True)
class Limit:
    """One resource limit: its name in errors, the variable that sets it for
    a worker, the ``limits`` key that lowers it for a task, and its unit."""

    key: str
    setting: str
    prop: str
    what: str
    unit: str  # "s", "MiB" or "" (a count)


LIMITS = (
    Limit("cpu", "ORCHESTRA_SCRIPT_CPU_SECONDS", "cpu", "CPU time limit", "s"),
    Limit("memory", "ORCHESTRA_SCRIPT_MEMORY_MB", "memory", "memory limit", "MiB"),
    Limit("processes", "ORCHESTRA_SCRIPT_PROCESSES", "processes", "process limit", ""),
    Limit(
        "open_files", "ORCHESTRA_SCRIPT_OPEN_FILES", "openFiles", "open file limit", ""
    ),
    Limit("output", "ORCHESTRA_SCRIPT_OUTPUT_MB", "output", "output limit", "MiB"),
)
LIMIT = {limit.key: limit for limit in LIMITS}


def describe_limit(limit: Limit, value: int | float) -> str:
    """``512 MiB``, ``2 s``, ``64``; sizes below 1 MiB in KiB."""
    if limit.unit == "MiB" and value < 1:
        return f"{round(value * 1024)} KiB"
    shown = int(value) if float(value).is_integer() else round(value, 2)
    return f"{shown} {limit.unit}".strip()


@dataclass(frozen=True)
class Sandbox:
    """The effective set-up of this worker's scripts."""

    requested: str
    mode: str  # bwrap | user | none
    network: str  # host | none
    uid: int | None = None  # switch to this user in the child (None: stay)
    gid: int | None = None
    user_name: str = ""
    home: str = ""
    problem: str = ""  # set: scripts cannot run as configured (says why)
    limits: dict[str, float] = field(default_factory=dict)  # key → value, 0 = none

    @property
    def switches_user(self) -> bool:
        return self.uid is not None


def _settings():
    from django.conf import settings

    return settings


def configured_limits() -> dict[str, float]:
    settings = _settings()
    return {limit.key: getattr(settings, limit.setting) for limit in LIMITS}


def current() -> Sandbox:
    """The sandbox for this process (settings read at call time)."""
    settings = _settings()
    return resolve(
        settings.ORCHESTRA_SCRIPT_SANDBOX,
        settings.ORCHESTRA_SCRIPT_USER,
        settings.ORCHESTRA_SCRIPT_NETWORK,
        tuple(sorted(configured_limits().items())),
    )


@functools.lru_cache(maxsize=8)
def resolve(
    requested: str, user: str, network: str, limits: tuple[tuple[str, float], ...]
) -> Sandbox:
    is_root = os.geteuid() == 0
    uid = gid = None
    name, home, problem = "", "", ""
    wanted = user or (DEFAULT_ROOT_USER if is_root else "")
    if wanted:
        try:
            entry = (
                pwd.getpwuid(int(wanted)) if wanted.isdigit() else pwd.getpwnam(wanted)
            )
        except (KeyError, ValueError):
            entry = None
            problem = f"ORCHESTRA_SCRIPT_USER={wanted!r} is not a user of this machine"
        if entry is not None and entry.pw_uid != os.geteuid():
            if is_root:
                uid, gid = entry.pw_uid, entry.pw_gid
                name, home = entry.pw_name, entry.pw_dir
            else:
                problem = (
                    f"ORCHESTRA_SCRIPT_USER={wanted!r} is set but this worker runs as "
                    f"uid {os.geteuid()} and cannot switch users (start it as root)"
                )
    base = dict(requested=requested, network=network, limits=dict(limits))
    ident = dict(uid=uid, gid=gid, user_name=name, home=home)
    if problem:
        return Sandbox(mode=requested, problem=problem, **base)
    if requested in ("auto", "bwrap"):
        trouble = bwrap_problem(uid, gid, network)
        if trouble is None:
            return Sandbox(mode="bwrap", **base, **ident)
        if requested == "bwrap":
            return Sandbox(
                mode="bwrap",
                problem=f"ORCHESTRA_SCRIPT_SANDBOX=bwrap but bubblewrap cannot run "
                f"here: {trouble}",
                **base,
            )
    if network == "none":
        why = (
            f"which cannot run here: {bwrap_problem(uid, gid, network)}"
            if requested == "auto"
            else f"not ORCHESTRA_SCRIPT_SANDBOX={requested}"
        )
        return Sandbox(
            mode="none" if uid is None else "user",
            problem=f"ORCHESTRA_SCRIPT_NETWORK=none needs the bwrap sandbox, {why}",
            **base,
        )
    if requested == "user" and uid is None:
        return Sandbox(
            mode="user",
            problem="ORCHESTRA_SCRIPT_SANDBOX=user needs a worker started as root "
            "and ORCHESTRA_SCRIPT_USER naming another user",
            **base,
        )
    if requested in ("auto", "user") and uid is not None:
        return Sandbox(mode="user", **base, **ident)
    # Asked for (or the only choice): the worker's own user, warned at start.
    return Sandbox(mode="none", **base)


@functools.lru_cache(maxsize=8)
def bwrap_problem(uid: int | None, gid: int | None, network: str) -> str | None:
    """None when a trivial command runs in the sandbox exactly as scripts would
    (same namespaces, same user switch); else what went wrong."""
    if shutil.which("bwrap") is None:
        return "the bwrap command is not installed (Debian: apt-get install bubblewrap)"
    folder = tempfile.mkdtemp(prefix="orchestra-probe-")
    try:
        probe = Sandbox(
            requested="bwrap", mode="bwrap", network=network, uid=uid, gid=gid
        )
        prepare_folder(probe, Path(folder))
        result = subprocess.run(
            command(probe, ["/bin/sh", "-c", "true"], Path(folder), {}),
            cwd=folder,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if result.returncode != 0:
        return (
            result.stderr.decode(errors="replace").strip()
            or f"exit code {result.returncode}"
        )
    return None


def prepare_folder(sandbox: Sandbox, folder: Path) -> None:
    """Let the script user own its working folder (and only pass through the
    folder above it: 0711 lists nothing, so sibling folders stay unknown)."""
    if not sandbox.switches_user:
        return
    parent = folder.parent
    if parent.stat().st_uid == os.geteuid() and parent != Path(tempfile.gettempdir()):
        parent.chmod(0o711)
    os.chown(folder, sandbox.uid, sandbox.gid)


def _readonly_paths() -> list[str]:
    """What the worker's Python needs besides the system folders: the venv,
    the base installation and the real path of the interpreter."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.add(str(Path(sys.executable).resolve().parent.parent))
    keep = []
    for path in sorted(paths):
        real = os.path.realpath(path)
        if any(real == top or real.startswith(top + "/") for top in SYSTEM_DIRS):
            continue
        if os.path.isdir(real):
            keep.append(real)
            if real != path and os.path.isdir(path):
                keep.append(path)
    return sorted(set(keep))


def _parents(path: str, made: set[str]) -> list[str]:
    """Create the folders above a mount point as 0755 (bwrap would copy the
    host's modes, and a 0700 /root would hide the worker's Python from the
    script user). Only the mount point's content is visible, not siblings."""
    args = []
    parts = Path(path).parent.parts[1:]
    for index in range(len(parts)):
        folder = "/" + "/".join(parts[: index + 1])
        if folder in made or any(
            folder == top or folder.startswith(top + "/") for top in SYSTEM_DIRS
        ):
            continue
        made.add(folder)
        args += ["--perms", "0755", "--dir", folder]
    return args


def _bwrap(sandbox: Sandbox, folder: Path) -> list[str]:
    args = [
        "bwrap",
        "--die-with-parent",  # the kernel ends the sandbox when the worker dies
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "orchestra-script",
    ]
    if sandbox.network == "none":
        args.append("--unshare-net")
    for top in SYSTEM_DIRS:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    # The private /tmp, /var/tmp and /run first: a venv or checkout that
    # lives below one of them (a clone in /tmp) is bound on top of it.
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    args += ["--tmpfs", "/var/tmp", "--tmpfs", "/run"]
    made: set[str] = set()
    for path in _readonly_paths():
        args += [*_parents(path, made), "--ro-bind", path, path]
    args += [*_parents(GUARD, made), "--ro-bind", GUARD, GUARD]
    for resolver in ("/run/systemd/resolve", "/run/resolvconf"):
        # /etc/resolv.conf often points here: name resolution keeps working.
        args += ["--ro-bind-try", resolver, resolver]
    # The guard enters the folder once it is the script user (root without
    # capabilities may not enter the script user's 0700 folder).
    args += [*_parents(str(folder), made), "--bind", str(folder), str(folder)]
    args += ["--chdir", "/"]
    if os.geteuid() == 0:
        # Root outside keeps its capabilities inside unless told otherwise;
        # the guard needs only what switching to the script user takes.
        args += ["--cap-drop", "ALL"]
        if sandbox.switches_user:
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return [*args, "--"]


def guard_options(
    sandbox: Sandbox, limits: dict[str, float], folder: Path
) -> list[str]:
    opts: list[str] = ["--chdir", str(folder)] if sandbox.mode == "bwrap" else []
    if sandbox.mode != "bwrap":
        # No PID namespace to end everything: the guard asks the kernel for a
        # signal when the worker dies (PR_SET_PDEATHSIG) and ends the group.
        opts += ["--parent", str(os.getpid())]
    if sandbox.switches_user:
        opts += ["--user", f"{sandbox.uid}:{sandbox.gid}"]
    cpu = limits.get("cpu") or 0
    if cpu:
        opts += ["--rlimit", f"cpu={max(int(cpu), 1)}"]
    if limits.get("memory"):
        opts += ["--rlimit", f"as={int(limits['memory'] * 1024 * 1024)}"]
    # RLIMIT_NPROC counts every process of the user: meaningless for the
    # worker's own user (the worker's threads count too) and ignored for root.
    if limits.get("processes") and (sandbox.switches_user or sandbox.mode == "bwrap"):
        opts += ["--rlimit", f"nproc={int(limits['processes'])}"]
    if limits.get("open_files"):
        opts += ["--rlimit", f"nofile={int(limits['open_files'])}"]
    return opts


def command(
    sandbox: Sandbox,
    args: list[str],
    folder: Path,
    limits: dict[str, float],
) -> list[str]:
    """The full command line that runs ``args`` in ``folder`` as configured."""
    guard = [
        sys.executable,
        "-I",
        "-S",
        GUARD,
        *guard_options(sandbox, limits, folder),
        "--",
    ]
    if sandbox.mode == "bwrap":
        return [*_bwrap(sandbox, folder), *guard, *args]
    return [*guard, *args]


def user_env(sandbox: Sandbox, folder: Path) -> dict[str, str]:
    """HOME and USER as the script user sees them."""
    if not sandbox.switches_user:
        return {}
    return {
        "HOME": str(folder),
        "USER": sandbox.user_name,
        "LOGNAME": sandbox.user_name,
    }


# --- what an operator is told at start --------------------------------------
def _url_without_password(name: str, url: str, local: tuple[str, ...]) -> str | None:
    try:
        parsed = urlparse(url)
    except ValueError:
        return None
    if not parsed.scheme.startswith(local) or parsed.password:
        return None
    return name


def start_warnings(sandbox: Sandbox | None = None) -> list[str]:
    """Lines a worker logs as warnings when it starts: what a script could
    reach that it should not, or why scripts cannot run at all."""
    sandbox = sandbox or current()
    settings = _settings()
    lines = []
    if sandbox.problem:
        lines.append(f"script tasks will fail: {sandbox.problem}")
        return lines
    if sandbox.mode == "none":
        lines.append(
            "script tasks are NOT isolated (ORCHESTRA_SCRIPT_SANDBOX resolved to "
            f"'none', requested '{sandbox.requested}'): a script runs as this "
            "worker's user and can read the worker's environment (DATABASE_URL, "
            "SECRET_KEY, SECRET_*) through /proc, its files and data folder "
            f"({settings.ORCHESTRA_HOME}), the internal storage of every namespace "
            "and other scripts' working folders. Install bubblewrap or start the "
            "worker as root with ORCHESTRA_SCRIPT_USER."
        )
    elif sandbox.mode == "user":
        lines.append(
            f"script tasks run as user '{sandbox.user_name}' without bubblewrap: a "
            "script cannot read the worker's environment, memory or 0700 folders, "
            "but it sees every process and world-readable file of this machine, "
            "and scripts running at once share that user. Install bubblewrap for "
            "namespaces."
        )
    if sandbox.network == "host":
        open_urls = [
            name
            for name in (
                _url_without_password(
                    "DATABASE_URL", settings.DATABASE_URL, ("postgres", "pgsql")
                ),
                _url_without_password(
                    "CELERY_BROKER_URL", settings.CELERY_BROKER_URL, ("redis", "amqp")
                ),
            )
            if name
        ]
        if open_urls:
            lines.append(
                f"{' and '.join(open_urls)} carry no password and scripts share this "
                "worker's network: with trust authentication on loopback (PostgreSQL "
                "'trust', Redis without requirepass) any local process, a script "
                "too, can connect. Use password authentication in production, or "
                "ORCHESTRA_SCRIPT_NETWORK=none."
            )
    return lines


def summary(sandbox: Sandbox | None = None) -> str:
    """One line for start-up output: the mode, user, network and limits."""
    sandbox = sandbox or current()
    if sandbox.problem:
        return f"unusable ({sandbox.problem})"
    parts = [sandbox.mode]
    if sandbox.switches_user:
        parts.append(f"as {sandbox.user_name}")
    parts.append(f"network {sandbox.network}")
    shown = [
        f"{limit.key.replace('_', ' ')} {describe_limit(limit, sandbox.limits[limit.key])}"
        for limit in LIMITS
        if sandbox.limits.get(limit.key)
    ]
    return ", ".join(parts) + (f"; limits: {', '.join(shown)}" if shown else "")


def protect_data_folders(sandbox: Sandbox | None = None) -> list[str]:
    """In ``user`` mode the script user sees this machine's files: close the
    worker's data folder and storage to everyone but the worker's user.
    Returns what was changed (bwrap does not mount them at all)."""
    sandbox = sandbox or current()
    if sandbox.mode != "user" or sandbox.problem:
        return []
    settings = _settings()
    folders = {Path(settings.ORCHESTRA_HOME)}
    location = settings.STORAGES["default"].get("OPTIONS", {}).get("location")
    if location:
        folders.add(Path(location))
    changed = []
    for folder in sorted(folders):
        try:
            info = folder.stat()
        except OSError:
            continue
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            folder.chmod(info.st_mode & 0o700)
            changed.append(str(folder))
    return changed


def report_at_start(log) -> None:
    """What a worker says about its scripts when it starts (``log`` is a
    logging.Logger): one info line, and a warning per thing a script could
    reach that it should not."""
    box = current()
    log.info("script sandbox: %s", summary(box))
    for folder in protect_data_folders(box):
        log.warning("closed %s to other users (scripts run as another user)", folder)
    for line in start_warnings(box):
        log.warning(line)
