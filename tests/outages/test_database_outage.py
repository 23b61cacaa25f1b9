"""A PostgreSQL restart while tasks run: no execution stays RUNNING.

Everything runs against a private PostgreSQL and Redis this test starts and
stops (never the shared ones), with a real Celery worker subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from tests.conftest import ROOT, wait_for
from tests.outages.private import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.worker, pytest.mark.xdist_group("outages")]

FLOW = """
id: outage
namespace: tests.outage
tasks:
  - id: work
    type: Sleep
    duration: PT3S
  - id: after
    type: Return
    format: "after {{ outputs.work is defined }}"
"""

START = """
import json, django
django.setup()
from flows.models import save_flow
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
_, rev, _ = save_flow({flow!r}, actor="test")
print(json.dumps(create_execution(rev, actor=Actor.system("test")).pk))
"""


@pytest.fixture
def services(tmp_path):
    pg = PrivatePostgres(tmp_path / "pg")
    redis = PrivateRedis(tmp_path / "redis")
    yield pg, redis
    redis.close()
    pg.close()


def _env(tmp_path, pg, redis) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": pg.url,
        "CELERY_BROKER_URL": redis.url,
        "ORCHESTRA_HOME": str(tmp_path / "home"),
        "ORCHESTRA_HEARTBEAT_SECONDS": "0.5",
        "ORCHESTRA_MISSED_HEARTBEATS": "4",
        "DJANGO_SETTINGS_MODULE": "orchestra.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("ORCHESTRA_BROKER_KEY_PREFIX", None)
    return env


def migrate(env) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=300,
    )


def _python(env, code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _query(pg, sql: str, *params):
    with psycopg.connect(pg.url, connect_timeout=2) as conn:
        return conn.execute(sql, params).fetchall()


def test_a_task_that_ends_while_the_database_is_down_is_recorded_when_it_is_back(
    tmp_path, services
):
    pg, redis = services
    env = _env(tmp_path, pg, redis)
    migrate(env)
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "orchestra",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "2",
            "--hostname",
            "outage@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        execution_id = json.loads(_python(env, START.format(flow=FLOW)))
        wait_for(
            lambda: _query(
                pg,
                "SELECT 1 FROM executions_taskrun WHERE execution_id = %s "
                "AND task_id = 'work' AND state = 'RUNNING'",
                execution_id,
            ),
            60,
            what="the Sleep to start on the worker",
        )
        # Down while the Sleep runs; it ends (and cannot be recorded) meanwhile.
        pg.stop()
        outbox = tmp_path / "home" / "outbox"
        wait_for(
            lambda: list(outbox.glob("*/taskrun-*.json")),
            30,
            what="the worker to keep the outcome in its outbox",
        )
        time.sleep(1)
        pg.start()

        def ended():
            try:
                rows = _query(
                    pg,
                    "SELECT state FROM executions_execution WHERE id = %s",
                    execution_id,
                )
            except psycopg.OperationalError:
                return None
            return rows[0][0] if rows[0][0] != "RUNNING" else None

        assert wait_for(ended, 90, interval=0.5, what="the execution to end") == (
            "SUCCESS"
        ), (tmp_path / "worker.log").read_text()[-3000:]
        runs = dict(
            _query(
                pg,
                "SELECT task_id, state FROM executions_taskrun WHERE execution_id = %s",
                execution_id,
            )
        )
        assert runs == {"work": "SUCCESS", "after": "SUCCESS"}
        # Recorded once: one move of 'work' to SUCCESS in its history.
        moves = _query(
            pg,
            "SELECT c.from_state, c.to_state FROM executions_statechange c "
            "JOIN executions_taskrun t ON t.id = c.taskrun_id "
            "WHERE t.execution_id = %s AND t.task_id = 'work' ORDER BY c.id",
            execution_id,
        )
        assert moves[-1] == ("RUNNING", "SUCCESS") and moves.count(moves[-1]) == 1
        assert not list(outbox.glob("*/taskrun-*.json"))
        text = (tmp_path / "worker.log").read_text()
        assert "kept in" in text and "recording when the database answers" in text
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()
