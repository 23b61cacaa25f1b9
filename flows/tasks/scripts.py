"""Script tasks: Python ``Script``/``Commands`` and shell ``Script``/``Commands``.

Each run gets a fresh working folder. ``inputFiles`` are written there
(inline text or ``kestra://`` files), the commands run in their own process
group, every stdout/stderr line reaches the logs while the process runs, and
files matching ``outputFiles`` go to internal storage afterwards. A line
``::{"outputs": {...}}::`` sets the ``vars`` output, as in Kestra.

The process runs in the worker's script sandbox (orchestra/lib/sandbox.py:
bubblewrap namespaces and/or another OS user, resource limits, an output
cap); a limit that is hit fails the task with a message naming it.

Containers are not used here: ``containerImage``, ``docker``, ``taskRunner``
and ``runner`` are accepted so Kestra flows validate, and a warning says so
in the logs (and when the flow is validated).
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from flows.expressions import ExpressionError
from flows.tasks.context import RunContext, TaskFailed, warn_in_logs
from flows.tasks.fields import (
    BaseTask,
    DBool,
    DDict,
    DDuration,
    DInt,
    DList,
    DSize,
    DStr,
    Strict,
)
from flows.tasks.registry import register
from orchestra.lib import sandbox
from orchestra.lib.durations import format_duration

OUTPUT_LINE = re.compile(r"^::(\{.*\})::$")
# What a script inherits from the worker's environment. Everything else (the
# database URL, the secret key, broker credentials) stays out of user code.
INHERITED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "SYSTEMROOT",
)
TERM_GRACE = 2.0  # seconds between SIGTERM and SIGKILL to the process group
MAX_LINE = 64 * 1024  # bytes of output per log line
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "ash"}
STDERR_TAIL = 20  # stderr lines quoted in the error of a failed run
PROCESS_RUNNERS = {
    "process",
    "io.kestra.plugin.core.runner.process",
    "io.kestra.core.models.tasks.runners.types.processtaskrunner",
}


class ScriptLimits(Strict):
    """Lower this task's resource limits below the worker's (never above)."""

    cpu: DDuration | None = None
    memory: DSize | None = None
    processes: DInt | None = None
    openFiles: DInt | None = None
    output: DSize | None = None


class ScriptTask(BaseTask):
    beforeCommands: list[DStr] | DStr | None = None
    env: DDict | None = None
    interpreter: list[DStr] | None = None
    inputFiles: DDict | DStr | None = None
    outputFiles: DList | None = None
    # Kestra 0.23 stopped turning stderr output into WARNING; true brings that back.
    warningOnStdErr: DBool = False
    failFast: DBool = True
    limits: ScriptLimits | None = None
    # Options that need containers or Kestra's namespace files; accepted with a warning.
    containerImage: DStr | None = None
    taskRunner: dict[str, Any] | None = None
    docker: dict[str, Any] | None = None
    runner: str | None = None
    namespaceFiles: dict[str, Any] | None = None
    targetOS: str | None = None
    outputDirectory: DBool | None = None

    def validation_warnings(self) -> list[str]:
        return super().validation_warnings() + ignored_options(self)


class ScriptWithBody(ScriptTask):
    script: DStr


class ScriptWithCommands(ScriptTask):
    commands: list[DStr] | DStr


def ignored_options(props: ScriptTask) -> list[str]:
    """Options that cannot apply on a process runner, each with what happens instead."""
    notes = []
    image = props.containerImage or (props.docker or {}).get("image")
    if image:
        notes.append(
            f"containers are not used here: the container image '{image}' is ignored "
            "and the commands run as a process on the worker"
        )
    elif props.docker:
        notes.append(
            "containers are not used here: 'docker' options are ignored and the "
            "commands run as a process on the worker"
        )
    runner_type = str((props.taskRunner or {}).get("type", "")).lower()
    if runner_type and runner_type not in PROCESS_RUNNERS:
        notes.append(
            f"task runner '{props.taskRunner.get('type')}' is not available here; "
            "the commands run as a process on the worker"
        )
    if props.runner and props.runner.upper() != "PROCESS":
        notes.append(
            f"runner {props.runner} is not available here; the commands run as a "
            "process on the worker"
        )
    if props.namespaceFiles and props.namespaceFiles.get("enabled", True):
        notes.append(
            "namespace files are not supported here: 'namespaceFiles' is ignored"
        )
    return notes


# --- working folder -------------------------------------------------------------
def _safe_relative(name: str, what: str = "inputFiles") -> PurePosixPath:
    path = PurePosixPath(str(name))
    if not str(name) or path.is_absolute() or ".." in path.parts:
        raise TaskFailed(
            f"{what}: {name!r} must be a relative path inside the working folder"
        )
    return path


def _input_files(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise TaskFailed(
                "inputFiles must be a mapping of file name to content or kestra:// URI"
            ) from None
    if not isinstance(value, dict):
        raise TaskFailed(
            "inputFiles must be a mapping of file name to content or kestra:// URI"
        )
    return value


def working_folder(ctx: RunContext) -> Path:
    """A fresh, empty folder: the engine's ``{{ workingDir }}`` when it gives
    one (so commands may name it), else a new temporary folder."""
    try:
        given = ctx.render("{{ workingDir }}")
    except ExpressionError:
        given = ""
    if not given:
        folder = Path(tempfile.mkdtemp(prefix="orchestra-task-"))
    else:
        folder = Path(given)
        shutil.rmtree(folder, ignore_errors=True)  # leftovers of an interrupted run
        folder.mkdir(parents=True, mode=0o700)
    sandbox.prepare_folder(sandbox.current(), folder)
    return folder


def write_input_files(ctx: RunContext, folder: Path, files: Any) -> None:
    for name, content in _input_files(files).items():
        target = folder / _safe_relative(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.strip().startswith("kestra://"):
            try:
                target.write_bytes(ctx.read_file(content.strip()))
            except ValueError as exc:
                raise TaskFailed(f"inputFiles.{name}: {exc}") from None
        else:
            text = content if isinstance(content, str) else json.dumps(content)
            target.write_text(text)


def collect_output_files(
    ctx: RunContext, folder: Path, patterns: list[str] | None
) -> dict[str, str]:
    stored: dict[str, str] = {}
    for pattern in patterns or []:
        _safe_relative(pattern, "outputFiles")
        matches = sorted(
            p for p in folder.glob(str(pattern)) if _inside(folder, p) and p.is_file()
        )
        if not matches:
            warn_in_logs(
                ctx, f"outputFiles: nothing matches '{pattern}' in the working folder"
            )
        for path in matches:
            name = path.relative_to(folder).as_posix()
            if name not in stored:
                # O_NOFOLLOW: the script may have swapped the file for a link.
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as handle:
                    stored[name] = ctx.put_file(name, handle)
    return stored


def _inside(folder: Path, path: Path) -> bool:
    """A regular path of the working folder: a symbolic link the script made
    (to the worker's files, /proc/<worker>/environ...) is never followed,
    since the worker, not the script, reads output files."""
    real = os.path.realpath(path)
    base = os.path.realpath(folder)
    return real.startswith(base + os.sep) and real == os.path.join(
        base, os.path.relpath(path, folder)
    )


def script_env(
    extra: dict[str, Any] | None, folder: Path, python_bin: bool
) -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update(sandbox.user_env(sandbox.current(), folder))
    if python_bin:
        # ``python`` and ``pip`` in commands mean the worker's interpreter.
        env["PATH"] = os.pathsep.join(
            [str(Path(sys.executable).parent), env.get("PATH", "")]
        )
    env["WORKING_DIR"] = str(folder)
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the logs as they are printed
    for key, value in (extra or {}).items():
        env[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return env


# --- the process ------------------------------------------------------------------
OUTPUT_CAPPED = "\x00output-capped"  # never a decoded line: those lose their NULs


class _OutputBudget:
    """Bytes both pipes of one process may still write (None: no cap)."""

    def __init__(self, cap: int | None) -> None:
        self.left = cap
        self.lock = threading.Lock()

    def spend(self, size: int) -> bool:
        if self.left is None:
            return True
        with self.lock:
            self.left -= size
            return self.left >= 0


def _reader(stream, name: str, lines: queue.Queue, budget: _OutputBudget) -> None:
    try:
        # Bounded reads: a huge line without newline arrives in pieces.
        for raw in iter(lambda: stream.readline(MAX_LINE), b""):
            if not budget.spend(len(raw)):
                lines.put((name, OUTPUT_CAPPED))  # stop reading: the run ends
                return
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            lines.put((name, text.replace("\x00", "")))
    finally:
        lines.put((name, None))


def kill_group(proc: subprocess.Popen, grace: float = TERM_GRACE) -> None:
    """End the process and everything it started (same process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class _Outcome:
    def __init__(self) -> None:
        self.vars: dict[str, Any] = {}
        self.stdout_lines = 0
        self.stderr_lines = 0
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)


def _without_nul(value: Any) -> Any:
    """JSON may spell NUL (\\u0000); PostgreSQL cannot store it in JSON or
    text, and the run could then never record its end."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _handle_line(
    ctx: RunContext, props: ScriptTask, stream: str, line: str, outcome: _Outcome
) -> None:
    match = OUTPUT_LINE.match(line.strip())
    if match:
        try:
            payload = json.loads(match.group(1))
        except json.JSONDecodeError:
            payload = None
        if isinstance(payload, dict):
            payload = _without_nul(payload)
            if isinstance(payload.get("outputs"), dict):
                outcome.vars.update(payload["outputs"])
            for entry in payload.get("logs") or []:
                if isinstance(entry, dict):
                    ctx.log(
                        str(entry.get("level", "INFO")), str(entry.get("message", ""))
                    )
            return
    if stream == "stdout":
        outcome.stdout_lines += 1
        ctx.log("INFO", line)
        return
    outcome.stderr_lines += 1
    outcome.stderr_tail.append(line)
    if props.warningOnStdErr is True:
        ctx.log("WARN", line)
    else:
        warn_in_logs(ctx, line)


def run_process(
    ctx: RunContext,
    props: ScriptTask,
    args: list[str],
    folder: Path,
    env: dict[str, str],
    limits: Limits,
) -> tuple[int, _Outcome]:
    """Run ``args`` in ``folder`` in the worker's sandbox, streaming its lines
    into the logs; honour kill and timeout through ``ctx.check_alive``."""
    outcome = _Outcome()
    box = sandbox.current()
    if box.problem:
        raise TaskFailed(f"cannot run scripts on this worker: {box.problem}")
    output = limits.values.get("output")
    budget = _OutputBudget(int(output * 1024 * 1024) if output else None)
    try:
        proc = subprocess.Popen(
            sandbox.command(box, args, folder, limits.values),
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise TaskFailed(f"cannot start {args[0]!r}: {exc.strerror or exc}") from None
    lines: queue.Queue = queue.Queue()
    readers = [
        threading.Thread(
            target=_reader, args=(proc.stdout, "stdout", lines, budget), daemon=True
        ),
        threading.Thread(
            target=_reader, args=(proc.stderr, "stderr", lines, budget), daemon=True
        ),
    ]
    for reader in readers:
        reader.start()
    open_streams = 2
    try:
        while open_streams:
            try:
                stream, line = lines.get(timeout=0.1)
            except queue.Empty:
                ctx.check_alive()
                if proc.poll() is not None:
                    # The main process ended but something it started in the
                    # background still holds the pipes: end the whole group, or
                    # the task would wait for it forever.
                    _kill_leftovers(proc)
                continue
            if line is None:
                open_streams -= 1
                continue
            if line is OUTPUT_CAPPED:
                kill_group(proc)
                raise TaskFailed(limits.exceeded("output"))
            _handle_line(ctx, props, stream, line, outcome)
            ctx.check_alive()
        code = proc.wait()
    except BaseException:
        if proc.poll() is None:
            kill_group(proc)
        raise
    finally:
        for reader in readers:
            reader.join(timeout=1)
        proc.stdout.close()
        proc.stderr.close()
    _kill_leftovers(proc)
    return code, outcome


def _kill_leftovers(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --- resource limits -----------------------------------------------------------
# What a process prints when a limit stops it (Python, glibc, dash/bash).
LIMIT_SIGNS = {
    "memory": ("MemoryError", "Cannot allocate memory", "out of memory", "bad_alloc"),
    "open_files": ("Too many open files",),
    "processes": ("Resource temporarily unavailable", "Cannot fork", "can't fork"),
    "cpu": ("CPU time limit exceeded", "Cputime limit exceeded"),
}


class Limits:
    """The limits of one script run: the worker's, lowered by the task's
    ``limits`` (a task cannot raise them: that would defeat the operator's)."""

    def __init__(self, values: dict[str, float], source: dict[str, str]) -> None:
        self.values = values  # key → value in sandbox.Limit units, 0 = none
        self.source = source  # key → what set it, for the error message

    @classmethod
    def of(cls, task: ScriptLimits | None) -> Limits:
        values = sandbox.configured_limits()
        source = {limit.key: limit.setting for limit in sandbox.LIMITS}
        asked = {}
        if task is not None:
            asked = {
                "cpu": _seconds(task.cpu),
                "memory": _mebibytes(task.memory),
                "processes": task.processes,
                "open_files": task.openFiles,
                "output": _mebibytes(task.output),
            }
        for key, value in asked.items():
            if value is None:
                continue
            limit = sandbox.LIMIT[key]
            if not isinstance(value, int | float) or value <= 0:
                raise TaskFailed(f"limits.{limit.prop} must be above 0, got {value!r}")
            worker = values[key]
            if worker and value > worker:
                raise TaskFailed(
                    f"limits.{limit.prop} {sandbox.describe_limit(limit, value)} is "
                    f"above this worker's {limit.what} of "
                    f"{sandbox.describe_limit(limit, worker)} ({limit.setting})"
                )
            values[key], source[key] = value, f"limits.{limit.prop}"
        return cls(values, source)

    def exceeded(self, key: str) -> str:
        limit = sandbox.LIMIT[key]
        shown = sandbox.describe_limit(limit, self.values[key])
        return f"script exceeded its {limit.what} of {shown} ({self.source[key]})"

    def hit(self, code: int, stderr: str) -> str | None:
        """Which limit most likely ended a failed run, from how it ended."""
        xcpu = int(signal.SIGXCPU)
        if self.values.get("cpu") and code in (-xcpu, 128 + xcpu):
            return "cpu"
        for key, signs in LIMIT_SIGNS.items():
            if self.values.get(key) and any(sign in stderr for sign in signs):
                return key
        return None


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise TaskFailed(f"limits.cpu must be a duration, got {value!r}")
    return value.total_seconds()


def _mebibytes(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int):
        raise TaskFailed(f"limits: expected a size such as 512MB, got {value!r}")
    return value / (1024 * 1024)


# --- the task types ------------------------------------------------------------------
def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _python() -> str:
    return shlex.quote(sys.executable)


def _run(
    ctx: RunContext,
    props: ScriptTask,
    main: list[str],
    files: dict[str, str],
    python: bool,
) -> dict[str, Any]:
    folder = working_folder(ctx)
    started = time.monotonic()
    try:
        write_input_files(ctx, folder, props.inputFiles)
        for name, content in files.items():
            (folder / name).write_text(content)
        body = [*_lines(props.beforeCommands), *main]
        interpreter = [str(p) for p in (props.interpreter or ["/bin/sh", "-c"])]
        if props.failFast is not False and Path(interpreter[0]).name in SHELLS:
            body.insert(0, "set -e")  # a failing command stops the script
        env = script_env(props.env, folder, python)
        limits = Limits.of(props.limits)
        code, outcome = run_process(
            ctx, props, [*interpreter, "\n".join(body)], folder, env, limits
        )
        if code != 0:
            tail = "\n".join(outcome.stderr_tail)
            hit = limits.hit(code, tail)
            if hit:
                message = limits.exceeded(hit)
            elif code < 0:
                message = f"command was ended by signal {-code}"
            else:
                message = f"command exited with code {code}"
            raise TaskFailed(
                f"{message}" + (f"; last lines of stderr:\n{tail}" if tail else "")
            )
        output_files = collect_output_files(ctx, folder, props.outputFiles)
        ctx.log(
            "DEBUG",
            f"command ended with code 0 after {format_duration(time.monotonic() - started)}",
        )
        return {
            "exitCode": code,
            "vars": outcome.vars,
            "outputFiles": output_files,
            "stdOutLineCount": outcome.stdout_lines,
            "stdErrLineCount": outcome.stderr_lines,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_python_script(ctx: RunContext, props: ScriptWithBody) -> dict[str, Any]:
    name = "main.py"
    while props.inputFiles and name in _input_files(props.inputFiles):
        name = "_" + name
    return _run(
        ctx, props, [f"{_python()} {name}"], {name: str(props.script)}, python=True
    )


def run_python_commands(ctx: RunContext, props: ScriptWithCommands) -> dict[str, Any]:
    return _run(ctx, props, _lines(props.commands), {}, python=True)


def run_shell_script(ctx: RunContext, props: ScriptWithBody) -> dict[str, Any]:
    return _run(ctx, props, [str(props.script)], {}, python=False)


def run_shell_commands(ctx: RunContext, props: ScriptWithCommands) -> dict[str, Any]:
    return _run(ctx, props, _lines(props.commands), {}, python=False)


register(
    "io.kestra.plugin.scripts.python.Script",
    ScriptWithBody,
    run=run_python_script,
    summary="Run a Python script in a temporary working folder",
)
register(
    "io.kestra.plugin.scripts.python.Commands",
    ScriptWithCommands,
    run=run_python_commands,
    summary="Run shell commands with the worker's Python on the PATH",
)
register(
    "io.kestra.plugin.scripts.shell.Script",
    ScriptWithBody,
    run=run_shell_script,
    summary="Run a shell script in a temporary working folder",
)
register(
    "io.kestra.plugin.scripts.shell.Commands",
    ScriptWithCommands,
    run=run_shell_commands,
    summary="Run shell commands in a temporary working folder",
)
