"""Issue 12: Celery's worker and beat never import from the working
directory: a ``flows/`` folder where the server starts cannot shadow ours."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from executions.models import Worker
from orchestra.lib.syspath import safe_sys_path
from tests.conftest import ROOT, test_database_url, wait_for

ORCHESTRA = str(Path(sys.executable).with_name("orchestra"))


@pytest.fixture
def hostile_folder(tmp_path: Path) -> Path:
    """A folder with look-alike packages that leave a mark when imported."""
    for name in ("flows", "executions", "orchestra", "accounts", "sla"):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text(
            "import pathlib\n"
            f"pathlib.Path({str(tmp_path / 'imported')!r}).write_text({name!r})\n"
            "raise SystemExit('shadowed')\n"
        )
    return tmp_path


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": test_database_url()}
    env.pop("PYTHONPATH", None)
    return subprocess.Popen(
        [ORCHESTRA, "server", *args],
        cwd=cwd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_the_worker_started_in_a_hostile_folder_runs_our_code(
    hostile_folder, transactional_db, redis_broker
):
    log = hostile_folder / "worker.log"
    proc = _start(["worker", "--concurrency", "1"], hostile_folder, log)
    try:
        wait_for(
            lambda: (
                proc.poll() is not None or Worker.objects.filter(state="alive").exists()
            ),
            60,
            what="the worker to register",
        )
        assert proc.poll() is None, log.read_text()[-2000:]
    finally:
        _stop(proc)
    assert not (hostile_folder / "imported").exists(), log.read_text()[-2000:]


def test_beat_started_in_a_hostile_folder_runs_our_code(
    hostile_folder, transactional_db, redis_broker
):
    log = hostile_folder / "beat.log"
    proc = _start(["scheduler"], hostile_folder, log)
    try:
        wait_for(
            lambda: proc.poll() is not None or "Scheduler: Sending" in log.read_text(),
            60,
            what="beat to send its first periodic task",
        )
        time.sleep(0.5)
        assert proc.poll() is None, log.read_text()[-2000:]
    finally:
        _stop(proc)
    assert not (hostile_folder / "imported").exists(), log.read_text()[-2000:]


def test_the_working_directory_leaves_sys_path():
    cwd = "/srv/somewhere"
    path = ["", cwd, "/usr/lib/python3.11", str(ROOT)]
    assert safe_sys_path(path, cwd) == ["/usr/lib/python3.11", str(ROOT)]
    # A checkout started from its own folder keeps it: that is our code.
    assert safe_sys_path(["", str(ROOT)], str(ROOT)) == ["", str(ROOT)]
