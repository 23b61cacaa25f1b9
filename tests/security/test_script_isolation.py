"""A script task is hostile code: on a real worker (PostgreSQL + Redis) it
cannot read the worker's environment or files, other runs' folders or the
internal storage, cannot reach the database, is stopped by each resource
limit with a clear error, and dies with its worker."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

from django.conf import settings

from executions.engine.context import working_dir
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import Execution, LogEntry, State
from tests.conftest import need, test_database_url, wait_for
from tests.security.conftest import WORKER_SECRETS
from tests.tasks.helpers import flow, indent, pids_with_env, wait_all_gone

PROBE = """
import json, os, socket
seen = {"environ": [], "readable": [], "visible": [], "connected": []}
for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
    try:
        data = open(f"/proc/{pid}/environ", "rb").read()
    except OSError:
        continue
    if b"DATABASE_URL" in data or b"SECRET_" in data:
        seen["environ"].append(pid)
try:
    data = open(f"/proc/{os.getppid()}/environ", "rb").read()
    seen["parent"] = "secrets" if b"DATABASE_URL" in data else "no secrets"
except OSError as exc:
    seen["parent"] = type(exc).__name__
for path in json.loads(os.environ["PATHS"]):
    if os.path.exists(path):
        seen["visible"].append(path)
        try:
            open(path, "rb").read(1) if os.path.isfile(path) else os.listdir(path)
            seen["readable"].append(path)
        except OSError:
            pass
for port in json.loads(os.environ["PORTS"]):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        seen["connected"].append(port)
    except OSError:
        pass
seen["processes"] = len([p for p in os.listdir("/proc") if p.isdigit()])
print("::" + json.dumps({"outputs": seen}) + "::")
"""


def _probe_flow(paths: list[str], ports: list[int], flow_id: str = "probe") -> str:
    return flow(
        "  - id: py\n    type: io.kestra.plugin.scripts.python.Script\n"
        "    env:\n"
        f"      PATHS: '{json.dumps(paths)}'\n"
        f"      PORTS: '{json.dumps(ports)}'\n"
        "    script: |\n" + indent(PROBE.strip(), 6),
        flow_id=flow_id,
        namespace="team.a",
    )


def _finish(execution: Execution, timeout: float = 60) -> Execution:
    wait_for(
        lambda: Execution.objects.get(pk=execution.pk).is_terminal,
        timeout,
        what=f"execution {execution.pk} to end",
    )
    execution.refresh_from_db()
    return execution


def _start(rev) -> Execution:
    return create_execution(rev, actor=Actor.system("test"))


def _waiting_flow(flow_id: str, marker: str = "") -> str:
    """A script that says where it runs and waits for a ``go`` file there."""
    return flow(
        "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        + (f"    env:\n      TEST_MARKER: {marker}\n" if marker else "")
        + "    commands:\n"
        "      - echo secret-of-team-b > data.txt\n"
        '      - echo "started $WORKING_DIR"\n'
        "      - 'while [ ! -e go ]; do sleep 0.05; done'\n"
        "      - echo done > effect.txt\n",
        flow_id=flow_id,
        namespace="team.b",
    )


def _started_folder(execution: Execution, timeout: float = 30) -> str:
    line = wait_for(
        lambda: LogEntry.objects.filter(
            execution=execution, message__startswith="started "
        ).first(),
        timeout,
        what="the script to start on the worker",
    )
    return line.message.removeprefix("started ")


def _storage_root() -> str:
    return str(settings.STORAGES["default"]["OPTIONS"]["location"])


def test_it_cannot_read_the_workers_environment_files_or_other_runs(
    deploy, sandboxed_worker
):
    worker = sandboxed_worker("bwrap")
    other = _start(deploy(_waiting_flow("other")))
    other_folder = _started_folder(other)
    home = Path(settings.ORCHESTRA_HOME)
    paths = [
        other_folder,  # another execution's working folder
        f"{other_folder}/data.txt",
        _storage_root(),  # every namespace's stored files
        str(home),  # the worker's data folder
        str(home / "secret_key"),  # the worker's settings secret (local mode)
        str(Path(settings.BASE_DIR) / "orchestra" / "settings.py"),
        f"/proc/{worker.proc.pid}/environ",
    ]
    probe = _finish(_start(deploy(_probe_flow(paths, []))))
    (Path(other_folder) / "go").touch()
    assert _finish(other).state == State.SUCCESS
    assert probe.state == State.SUCCESS, probe.taskruns.values_list("error", flat=True)
    seen = probe.taskruns.get(task_id="py").outputs["vars"]
    assert seen["environ"] == []  # no process shows DATABASE_URL or SECRET_*
    assert seen["parent"] in ("no secrets", "PermissionError")
    assert seen["visible"] == []
    assert seen["processes"] <= 4  # its own PID namespace: bwrap, guard, python
    text = " ".join(probe.logs.values_list("message", flat=True)) + json.dumps(seen)
    for value in [test_database_url(), *WORKER_SECRETS.values()]:
        assert value not in text


SHELL_PROBE = """
for f in /proc/[0-9]*/environ; do
  if grep -q -a DATABASE_URL "$f" 2>/dev/null; then echo "environ $f"; fi
done
for p in $PATHS; do
  if [ -d "$p" ]; then ls "$p" >/dev/null 2>&1 && echo "readable $p"
  elif [ -e "$p" ]; then head -c1 "$p" >/dev/null 2>&1 && echo "readable $p"
  fi
done
echo probed
"""


def test_in_user_mode_the_kernel_keeps_the_worker_private(deploy, sandboxed_worker):
    """No bubblewrap, but another OS user: /proc/<worker>/environ, the data
    folder and the storage are closed to the script by file permissions."""
    need(os.geteuid() == 0, "user mode needs a worker started as root")
    worker = sandboxed_worker("user", name="other-user")
    other = _start(deploy(_waiting_flow("other")))
    other_folder = _started_folder(other)
    home = Path(settings.ORCHESTRA_HOME)
    paths = [
        # Scripts share the script user, so a folder whose name is known is
        # open; the names carry a keyed hash and the folder above lists nothing.
        str(Path(other_folder).parent),
        _storage_root(),
        str(home / "secret_key"),
        f"/proc/{worker.proc.pid}/environ",
    ]
    probe = _finish(
        _start(
            deploy(
                flow(
                    "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Script\n"
                    f"    env:\n      PATHS: '{' '.join(paths)}'\n"
                    "    script: |\n" + indent(SHELL_PROBE.strip(), 6),
                    flow_id="probe",
                    namespace="team.a",
                )
            )
        )
    )
    (Path(other_folder) / "go").touch()
    _finish(other)
    assert probe.state == State.SUCCESS, probe.taskruns.values_list("error", flat=True)
    lines = list(probe.logs.values_list("message", flat=True))
    assert "probed" in lines
    assert [line for line in lines if line.startswith(("environ", "readable"))] == []
    assert "script tasks run as user 'nobody' without bubblewrap" in worker.read_log()


def test_it_cannot_connect_to_the_database_or_broker_without_network(
    deploy, sandboxed_worker
):
    sandboxed_worker("bwrap", ORCHESTRA_SCRIPT_NETWORK="none")
    ports = [5432, 6379]  # PostgreSQL (trust on loopback here) and Redis
    probe = _finish(_start(deploy(_probe_flow([], ports))))
    assert probe.state == State.SUCCESS, probe.taskruns.values_list("error", flat=True)
    assert probe.taskruns.get(task_id="py").outputs["vars"]["connected"] == []


def test_a_worker_says_at_start_what_an_unisolated_script_can_reach(
    deploy, sandboxed_worker
):
    worker = sandboxed_worker("none", name="open")
    wait_for(
        lambda: "script tasks are NOT isolated" in worker.read_log(),
        20,
        what="the warning in the worker's log",
    )
    log = worker.read_log()
    assert "DATABASE_URL" in log and "SECRET_KEY" in log  # names what is reachable
    # The test database has no password and scripts share the network.
    assert "carry no password" in log and "ORCHESTRA_SCRIPT_NETWORK=none" in log
    # And it does reach it: the reason for the warning.
    seen = _finish(_start(deploy(_probe_flow([], []))))
    assert seen.taskruns.get(task_id="py").outputs["vars"]["environ"] != []


LIMITED = """
  - id: memory
    type: io.kestra.plugin.scripts.python.Script
    allowFailure: true
    script: "block = bytearray(400 * 1024 * 1024)"
  - id: cpu
    type: io.kestra.plugin.scripts.python.Script
    allowFailure: true
    limits: {cpu: PT1S}
    script: "while True: pass"
  - id: processes
    type: io.kestra.plugin.scripts.python.Script
    allowFailure: true
    limits: {processes: 16}
    script: |
      import os, time
      for _ in range(64):
          if os.fork() == 0:
              time.sleep(2)
              os._exit(0)
  - id: files
    type: io.kestra.plugin.scripts.python.Script
    allowFailure: true
    limits: {openFiles: 32}
    script: "handles = [open(f'f{n}', 'w') for n in range(64)]"
  - id: output
    type: io.kestra.plugin.scripts.shell.Commands
    allowFailure: true
    limits: {output: 64KB}
    commands: ["while true; do echo 0123456789012345678901234567890123456789; done"]
  - id: above
    type: io.kestra.plugin.scripts.shell.Commands
    allowFailure: true
    limits: {memory: 1GB}
    commands: ["echo never"]
"""


def test_each_limit_stops_the_script_with_a_clear_error(deploy, sandboxed_worker):
    sandboxed_worker("bwrap", ORCHESTRA_SCRIPT_MEMORY_MB="256")
    execution = _finish(_start(deploy(flow(LIMITED.lstrip("\n")))), timeout=120)
    errors = dict(execution.taskruns.values_list("task_id", "error"))
    assert errors["memory"].startswith(
        "script exceeded its memory limit of 256 MiB (ORCHESTRA_SCRIPT_MEMORY_MB)"
    )
    assert errors["cpu"].startswith(
        "script exceeded its CPU time limit of 1 s (limits.cpu)"
    )
    assert errors["processes"].startswith(
        "script exceeded its process limit of 16 (limits.processes)"
    )
    assert errors["files"].startswith(
        "script exceeded its open file limit of 32 (limits.openFiles)"
    )
    assert (
        errors["output"] == "script exceeded its output limit of 64 KiB (limits.output)"
    )
    assert errors["above"] == (
        "limits.memory 1024 MiB is above this worker's memory limit of 256 MiB "
        "(ORCHESTRA_SCRIPT_MEMORY_MB)"
    )
    assert not execution.logs.filter(message="never").exists()


def _sigstop_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass


def _tidy(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_a_script_dies_with_its_worker_by_the_kernel_not_a_poll(
    deploy, sandboxed_worker
):
    """Every process of the script, its guard and bubblewrap included, is
    frozen before the worker is SIGKILLed: nothing in user space can react,
    so only the kernel (die-with-parent, the PID namespace) can end them."""
    worker = sandboxed_worker("bwrap")
    marker = f"orchestra-test-{uuid.uuid4().hex}"
    execution = _start(deploy(_waiting_flow("doomed", marker)))
    folder = Path(_started_folder(execution))
    pids = pids_with_env(marker)
    assert len(pids) >= 3  # bubblewrap, the guard, the shell
    _sigstop_all(pids)
    worker.sigkill()
    left = wait_all_gone(pids)
    _tidy(left)
    assert not left, f"script processes {left} outlived their SIGKILLed worker"
    (folder / "go").touch()  # what the script waited for, too late
    assert not wait_all_gone(pids_with_env(marker), timeout=1)
    assert not (folder / "effect.txt").exists()


def test_a_script_without_namespaces_dies_with_its_worker_too(deploy, sandboxed_worker):
    """No PID namespace: the guard gets PR_SET_PDEATHSIG and ends the group."""
    worker = sandboxed_worker("none", name="bare")
    marker = f"orchestra-test-{uuid.uuid4().hex}"
    execution = _start(deploy(_waiting_flow("doomed", marker)))
    folder = Path(_started_folder(execution))
    pids = pids_with_env(marker)
    worker.sigkill()
    left = wait_all_gone(pids)
    _tidy(left)
    assert not left, f"script processes {left} outlived their SIGKILLed worker"
    (folder / "go").touch()
    assert not (folder / "effect.txt").exists()


def test_output_files_never_follow_a_link_out_of_the_working_folder(
    deploy, run_inprocess
):
    """The worker, not the script, reads output files: a link to the worker's
    own secrets must not be collected."""
    target = Path(settings.ORCHESTRA_HOME) / "secret_key"
    assert target.exists()
    execution = run_inprocess(
        deploy(
            flow(
                "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Commands\n"
                "    outputFiles: ['*.txt']\n"
                f"    commands: ['ln -s {target} stolen.txt', "
                f"'ln -s /proc/{os.getpid()}/environ env.txt', 'echo mine > own.txt']\n"
            )
        )
    )
    assert execution.state == State.SUCCESS, execution.taskruns.values_list(
        "error", flat=True
    )
    files = execution.taskruns.get(task_id="sh").outputs["outputFiles"]
    assert sorted(files) == ["own.txt"]


def test_scripts_of_the_default_worker_cannot_reach_another_runs_folder_by_name():
    """Working folder names carry a keyed hash: knowing execution and task
    run ids does not give another run's folder."""
    first, second = working_dir(7, 8), working_dir(7, 9)
    assert Path(first).parent == Path(second).parent
    assert Path(first).name.startswith("7-8-") and len(Path(first).name) > 12
    assert Path(second).name[4:] != Path(first).name[4:]
