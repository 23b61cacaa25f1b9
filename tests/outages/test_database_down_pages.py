"""With the database or the broker away, people and clients are told so.

A private PostgreSQL and Redis, a real web server process; both services are
stopped and started again while it runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.conftest import ROOT, wait_for
from tests.outages.private import PrivatePostgres, PrivateRedis, free_port
from tests.outages.test_database_outage import _env, _python, migrate

pytestmark = [pytest.mark.subprocess, pytest.mark.xdist_group("outages")]

TOKEN = """
import django
django.setup()
from django.contrib.auth.models import User
from accounts.models import ApiToken
user = User.objects.create_user("ops", password="a-long-enough-password")
print(ApiToken.issue(user, "monitoring")[1])
"""


@pytest.fixture
def web(tmp_path):
    pg = PrivatePostgres(tmp_path / "pg")
    redis = PrivateRedis(tmp_path / "redis")
    env = _env(tmp_path, pg, redis)
    migrate(env)
    token = _python(env, TOKEN).strip()
    port = free_port()
    log = open(tmp_path / "web.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        env={**env, "ALLOWED_HOSTS": "127.0.0.1,localhost"},
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 60, what="the web server")
    yield url, token, pg, redis
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(15)
    log.close()
    redis.close()
    pg.close()


def test_pages_and_api_answer_a_plain_503_while_the_database_is_down(web):
    url, token, pg, _ = web
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/api/executions", headers=bearer).status_code == 200
    browser = httpx.Client(base_url=url)
    browser.get("/login/")
    signed_in = browser.post(
        "/login/",
        data={
            "username": "ops",
            "password": "a-long-enough-password",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        headers={"Referer": f"{url}/login/"},
    )
    assert signed_in.status_code == 302, signed_in.text[:500]
    pg.stop()

    page = browser.get("/executions/")
    assert page.status_code == 503
    assert "Orchestra cannot reach its database; retrying" in page.text
    assert page.headers["Retry-After"] == "5"
    api = httpx.get(f"{url}/api/executions", headers=bearer)
    assert api.status_code == 503
    assert api.json() == {
        "detail": "Orchestra cannot reach its database; retry shortly"
    }

    health = httpx.get(f"{url}/api/health")
    assert health.status_code == 503
    body = health.json()
    assert body == {
        "status": "DOWN",
        "checks": {"database": "DOWN", "broker": "UP"},
    }, "anonymous callers get no details"
    assert str(pg.port) not in health.text and "127.0.0.1" not in health.text

    pg.start()
    # The web reconnects by itself.
    wait_for(
        lambda: httpx.get(f"{url}/api/executions", headers=bearer).status_code == 200,
        30,
        what="the API to answer again",
    )
    again = httpx.get(f"{url}/api/health", headers=bearer).json()
    assert again["status"] == "UP"
    assert again["checks"]["database"] == "UP"
    # Nothing runs a scheduler or a worker here: said, but not a 503.
    assert again["checks"]["workers"] == "DOWN" and again["details"]["workers"] == 0
    assert again["checks"]["scheduler"] == "DOWN"


def test_health_is_503_while_the_broker_is_down(web):
    url, token, _, redis = web
    redis.stop()
    health = httpx.get(
        f"{url}/api/health", headers={"Authorization": f"Bearer {token}"}
    )
    assert health.status_code == 503
    body = health.json()
    assert body["checks"]["broker"] == "DOWN" and body["checks"]["database"] == "UP"
    assert body["details"]["broker"]  # the error, for signed-in operators
    redis.start()
    assert httpx.get(f"{url}/api/health").json()["status"] == "UP"
