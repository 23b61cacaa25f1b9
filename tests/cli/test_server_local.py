"""``orchestra server local`` as a newcomer runs it: a fresh data folder, no
servers, example flows, a flow executed from the CLI, and a clean stop."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import ORCHESTRA
from tests.conftest import wait_for

# One local server (web, worker and beat) at a time, whatever the test process.
pytestmark = pytest.mark.xdist_group("local-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_members(sid: int) -> set[int]:
    """Processes in session ``sid`` (the server and everything it started)."""
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
            members.add(int(entry.name))
    return members


def _describe(sid: int) -> str:
    """Each process of the session with its state and command, for a failure."""
    out = []
    for pid in sorted(_session_members(sid)):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        out.append(f"{pid} {stat[stat.rindex(')') + 2]} {command.decode()[:120]}")
    return "; ".join(out) or "none"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalServer:
    def __init__(self, cli, *extra: str, sigint_ignored: bool = False):
        self.cli = cli
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cli.home / "server.log"
        self.log = open(self.log_path, "w")
        # A session of its own: every child it starts can be found (and must end).
        self.proc = subprocess.Popen(
            [ORCHESTRA, "server", "local", "--port", str(self.port), *extra],
            env=cli.env,
            cwd=cli.home,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # As a background job of a script starts it: Python then does not
            # turn SIGINT into KeyboardInterrupt unless the program asks to.
            preexec_fn=_ignore_sigint if sigint_ignored else None,
        )

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def wait_healthy(self) -> None:
        def healthy():
            assert self.proc.poll() is None, f"server exited:\n{self.output()}"
            try:
                return (
                    httpx.get(f"{self.url}/api/health", timeout=2).json()["status"]
                    == "UP"
                )
            except httpx.HTTPError:
                return False

        wait_for(healthy, 90, interval=0.3, what=f"{self.url}/api/health")

    def cleanup(self) -> None:
        for pid in _session_members(self.proc.pid):
            os.kill(pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def local_server(cli):
    servers = []

    def start(*extra: str, **options) -> LocalServer:
        server = LocalServer(cli, *extra, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.cleanup()


def _stop_and_expect_no_orphans(server: LocalServer, signum: int) -> None:
    children = _session_members(server.proc.pid) - {server.proc.pid}
    assert len(children) >= 2, f"expected a worker and a scheduler: {children}"
    server.proc.send_signal(signum)
    # A bound for a hang, not a target: the server gives its children 10 s
    # to stop, and the other test process may be loading both cores.
    try:
        code = server.proc.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the server did not stop within 60 s of {signal.Signals(signum).name}; "
            f"its processes: {_describe(server.proc.pid)}\n{server.output()}"
        ) from None
    assert code == 0, server.output()
    wait_for(
        lambda: not _session_members(server.proc.pid),
        20,
        what=f"worker and scheduler to exit after {signal.Signals(signum).name}",
    )


def test_local_mode_runs_the_examples_end_to_end_and_stops_cleanly(cli, local_server):
    assert "DATABASE_URL" not in cli.env and "CELERY_BROKER_URL" not in cli.env
    server = local_server()
    server.wait_healthy()

    password_file = cli.home / "admin-password"
    password = password_file.read_text().strip()
    assert re.search(rf"login:\s+admin / {re.escape(password)}$", server.output(), re.M)
    assert password_file.stat().st_mode & 0o777 == 0o600

    listed = cli("flows", "list")
    assert listed.code == 0, listed
    for flow in ("hello_world", "branching", "daily_report"):
        assert flow in listed.out

    r = cli(
        "flows",
        "execute",
        "--namespace",
        "company.team",
        "--flow",
        "hello_world",
        "--wait",
        timeout=120,
    )
    assert r.code == 0, r
    assert "✔ make-greeting SUCCESS" in r.out
    assert re.search(r"Execution \d+ ended SUCCESS", r.out)
    assert "greeting: Welcome to Orchestra, Data Engineer" in r.out
    assert "no live worker" not in r.err
    assert (cli.home / "orchestra.sqlite3").exists() and (
        cli.home / "broker.sqlite3"
    ).exists()

    _kill_the_worker_during_a_sleep(cli, server)
    _stop_and_expect_no_orphans(server, signal.SIGTERM)


def _worker_pid(server: LocalServer) -> int:
    for pid in _session_members(server.proc.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # celery worker, or python -P -m orchestra.celery_main worker
        if any(b"celery" in part for part in command) and b"worker" in command:
            return pid
    raise AssertionError("no worker process found")


def _kill_the_worker_during_a_sleep(cli, server: LocalServer) -> None:
    """SIGKILL the worker mid-task: the server starts a new one, whose liveness
    sweep resubmits the orphaned task run to it (a lost worker is not the
    task's failure), and the history says why."""
    r = cli(
        "flows",
        "execute",
        "-n",
        "company.data",
        "-f",
        "long_job",
        "-i",
        "minutes=1",
        "--json",
    )
    assert r.code == 0, r
    execution_id = json.loads(r.out)["id"]

    def work():
        got = cli("executions", "get", str(execution_id), "--json")
        return next(t for t in json.loads(got.out)["taskRuns"] if t["taskId"] == "work")

    first = wait_for(
        lambda: (t := work())["state"] == "RUNNING" and t,
        60,
        what="the Sleep to start",
    )
    os.kill(_worker_pid(server), signal.SIGKILL)
    history_sql = (
        "SELECT from_state, to_state, cause, actor, reason FROM executions_statechange "
        "WHERE taskrun_id = ? ORDER BY id"
    )

    def history():
        with sqlite3.connect(cli.home / "orchestra.sqlite3") as db:
            return db.execute(history_sql, [first["id"]]).fetchall()

    wait_for(
        lambda: (
            any(h[1] == "CREATED" for h in history()) and work()["state"] == "RUNNING"
        ),
        # A bound, not a target: a new worker, the dead one's heartbeats
        # missed, then the sweep; each poll here is a CLI process, slow when
        # the other test processes load both cores.
        180,
        interval=1,
        what="the orphaned task run to run again on the new worker",
    )
    assert "the worker exited (code -9); starting it again" in server.output()
    resubmitted = next(h for h in history() if h[1] == "CREATED")
    assert resubmitted[:4] == ("RUNNING", "CREATED", "sweep", "liveness")
    assert resubmitted[4].startswith("resubmitted (1 of 2): worker lost: ")
    stopped = cli("executions", "kill", str(execution_id), "--reason", "test over")
    assert stopped.code == 0, stopped
    wait_for(
        lambda: (
            json.loads(cli("executions", "get", str(execution_id), "--json").out)[
                "state"
            ]
            == "KILLED"
        ),
        60,
        interval=1,
        what="the kill to end the execution",
    )


def test_ctrl_c_stops_the_worker_and_scheduler_too(cli, local_server):
    # Even when started with SIGINT ignored (a script's background job, some
    # CI launchers): the server handles SIGINT itself.
    server = local_server("--no-examples", sigint_ignored=True)
    server.wait_healthy()
    # Links in the emails the worker sends name this server's port.
    environ = Path(f"/proc/{_worker_pid(server)}/environ").read_bytes().split(b"\0")
    assert f"ORCHESTRA_BASE_URL={server.url}".encode() in environ
    _stop_and_expect_no_orphans(server, signal.SIGINT)
    # A second start reuses the data folder and keeps the admin password.
    password = (cli.home / "admin-password").read_text().strip()
    again = local_server("--no-examples")
    again.wait_healthy()
    assert re.search(rf"login:\s+admin / {re.escape(password)}$", again.output(), re.M)
    assert (cli.home / "admin-password").read_text().strip() == password
    _stop_and_expect_no_orphans(again, signal.SIGTERM)
