"""Fixtures of the security suite: a real Celery worker whose scripts run in
a given sandbox, and a known secret in its environment to look for."""

from __future__ import annotations

import pytest

from orchestra.lib import sandbox
from tests.conftest import need

# Values only the worker's environment holds: a script that can print one of
# them has read the worker's memory or environment.
WORKER_SECRETS = {
    "SECRET_KEY": "worker-django-key-0d6f0c4e9b",
    "SECRET_TEAM_B_TOKEN": "dGVhbS1iLW9ubHktNGE3Yw==",
}


def need_bwrap(network: str = "host") -> None:
    """Skip (fail under ORCHESTRA_REQUIRE_SERVICES=1) when bubblewrap cannot
    run here exactly as the worker would run it."""
    box = sandbox.resolve("bwrap", "", network, ())
    need(
        not box.problem, f"needs bubblewrap (apt-get install bubblewrap): {box.problem}"
    )


@pytest.fixture
def sandboxed_worker(start_worker, postgres, redis_broker):
    """Start a real worker with scripts in ``mode`` (and its secrets set)."""

    def start(mode: str = "bwrap", name: str = "sec", **env: str):
        if mode == "bwrap":
            need_bwrap(env.get("ORCHESTRA_SCRIPT_NETWORK", "host"))
        return start_worker(
            name, env={**WORKER_SECRETS, "ORCHESTRA_SCRIPT_SANDBOX": mode, **env}
        )

    return start
