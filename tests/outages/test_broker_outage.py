"""A Redis restart without persistence loses queued messages; the sweep
sends them again and every execution ends, each task body once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, wait_for
from tests.outages.private import PrivatePostgres, PrivateRedis
from tests.outages.test_database_outage import _env, _python, _query, migrate

pytestmark = [pytest.mark.worker, pytest.mark.xdist_group("outages")]

FLOW = """
id: burst
namespace: tests.broker
tasks:
  - id: first
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "{{{{ taskrun.id }}}}" >> {effects}
  - id: nap
    type: Sleep
    duration: PT1S
  - id: last
    type: Return
    format: done
"""

START = """
import json, django
django.setup()
from flows.models import save_flow
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
_, rev, _ = save_flow({flow!r}, actor="test")
print(json.dumps([create_execution(rev, actor=Actor.system("test")).pk for _ in range(30)]))
"""


def _celery(env, log, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "orchestra", *args],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_messages_lost_with_a_redis_restart_are_sent_again(tmp_path):
    pg = PrivatePostgres(tmp_path / "pg")
    redis = PrivateRedis(tmp_path / "redis")
    procs = []
    log = open(tmp_path / "celery.log", "w")
    try:
        env = {
            **_env(tmp_path, pg, redis),
            "ORCHESTRA_LIVENESS_SWEEP_SECONDS": "1",
            # Not a test of the sandbox: scripts write to this test's folder.
            "ORCHESTRA_SCRIPT_SANDBOX": "none",
        }
        migrate(env)
        effects = tmp_path / "effects.txt"
        procs.append(
            _celery(
                env,
                log,
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                "2",
                "--hostname",
                "broker@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            )
        )
        procs.append(
            _celery(env, log, "beat", "--schedule", str(tmp_path / "beat-schedule"))
        )
        ids = json.loads(_python(env, START.format(flow=FLOW.format(effects=effects))))
        # Some ran, most still wait in Redis: restart it, losing them.
        wait_for(lambda: effects.exists(), 60, what="the first task to run")
        redis.stop()
        done_before = _query(
            pg,
            "SELECT count(*) FROM executions_execution WHERE id = ANY(%s) "
            "AND state = 'SUCCESS'",
            ids,
        )[0][0]
        assert done_before < 20, "most of the work was still queued in Redis"
        time.sleep(2)
        redis.start()

        def all_ended():
            rows = _query(
                pg,
                "SELECT state, count(*) FROM executions_execution "
                "WHERE id = ANY(%s) GROUP BY state",
                ids,
            )
            return dict(rows) if set(dict(rows)) == {"SUCCESS"} else None

        counts = wait_for(all_ended, 180, interval=1, what="every execution to end")
        assert counts == {"SUCCESS": 30}
        ran = effects.read_text().split()
        assert len(ran) == 30 and len(set(ran)) == 30, "each task body ran once"
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        redis.close()
        pg.close()
