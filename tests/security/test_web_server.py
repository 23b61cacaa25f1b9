"""Issue 12 item 5: `orchestra server web` is a production server.

The real command is started on the test's PostgreSQL database: it runs
gunicorn, refuses to start without ALLOWED_HOSTS/CSRF_TRUSTED_ORIGINS, sends
a CSP everywhere and HSTS plus Secure cookies when the proxy says HTTPS, and
200 concurrent API requests leave at most workers x threads connections open.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from accounts.models import ApiToken, Role
from tests import conftest
from tests.conftest import ROOT

ORCHESTRA = str(Path(sys.executable).with_name("orchestra"))
WORKERS, THREADS = 2, 3  # the bound under test: 6 connections


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {log.read_text()}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError(f"server did not answer in {seconds} s: {log.read_text()}")


@pytest.fixture
def web_server(postgres, transactional_db, tmp_path):
    """`orchestra server web` on the test database; yields its base URL."""
    port = _free_port()
    log = tmp_path / "web.log"
    env = {
        **os.environ,
        "DATABASE_URL": conftest.test_database_url(),
        "ORCHESTRA_HOME": str(tmp_path),
        "ALLOWED_HOSTS": "127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port}",
        "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
        "PYTHONPATH": str(ROOT),
        "PGAPPNAME": APP_NAME,
    }
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                ORCHESTRA,
                *("server", "web", "--port", str(port)),
                *("--workers", str(WORKERS), "--threads", str(THREADS)),
            ],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/api/health", proc, log)
        yield url, proc, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        # The server's connections are gone before pytest drops the database.
        deadline = time.monotonic() + 15
        while _connections() and time.monotonic() < deadline:
            time.sleep(0.2)


APP_NAME = "orchestra-web-under-test"


def _connections() -> int:
    """Open connections of the server under test (libpq names them after
    PGAPPNAME) to the test database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = %s",
            [connection.settings_dict["NAME"], APP_NAME],
        )
        return cursor.fetchone()[0]


def test_server_web_runs_gunicorn_with_bounded_database_connections(web_server):
    url, proc, log = web_server
    # The process the command became is gunicorn (the command execs it).
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"gunicorn" in cmdline and b"gthread" in cmdline
    assert httpx.get(f"{url}/login/").headers["server"].startswith("gunicorn")

    user = get_user_model().objects.create_user("ann", password="pw-ann-12345")
    Role.objects.create(user=user, role="viewer", namespace="")
    _, key = ApiToken.issue(user, "load")
    headers = {"Authorization": f"Bearer {key}"}

    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _connections())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()

    async def burst() -> list:
        # One event loop opens all 200 connections and sends each request at
        # once; all 200 are in flight together.
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:

            async def call():
                try:
                    answer = await client.get(f"{url}/api/executions", headers=headers)
                    return answer.status_code
                except httpx.HTTPError as exc:
                    return repr(exc)

            return await asyncio.gather(*(call() for _ in range(200)))

    try:
        codes = asyncio.run(burst())
    finally:
        done.set()
        sampler.join()
    after = _connections()
    problems = [line for line in log.read_text().splitlines() if '"GET ' not in line]
    assert codes == [200] * 200, (
        sum(c != 200 for c in codes),
        {str(c) for c in codes},
        problems[-30:],
    )
    # Each thread holds at most one connection: never more than the bound,
    # during the burst or after it (CONN_MAX_AGE keeps them, bounded).
    assert 0 < peak <= WORKERS * THREADS, peak
    assert after <= WORKERS * THREADS, after


def test_headers_csp_always_hsts_and_secure_cookies_only_over_https(web_server):
    url, _, _ = web_server
    plain = httpx.get(f"{url}/login/")
    csp = plain.headers["content-security-policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in csp.split(";") if part.strip()
    )
    assert directives["script-src"] == ["'self'"]  # no inline scripts, no eval
    assert directives["frame-ancestors"] == ["'none'"]
    assert "strict-transport-security" not in plain.headers
    assert "secure" not in plain.headers["set-cookie"].lower()

    https = httpx.get(f"{url}/login/", headers={"X-Forwarded-Proto": "https"})
    assert https.headers["strict-transport-security"].startswith("max-age=31536000")
    cookie = https.headers["set-cookie"]
    assert cookie.startswith("csrftoken=") and "Secure" in cookie
    # A Host header that is not listed is refused, not followed.
    forged = httpx.get(f"{url}/login/", headers={"Host": "evil.example"})
    assert forged.status_code == 400


@pytest.mark.parametrize(
    "env, named",
    [
        ({}, ["ALLOWED_HOSTS is not set", "CSRF_TRUSTED_ORIGINS is not set"]),
        (
            {"ALLOWED_HOSTS": "*", "CSRF_TRUSTED_ORIGINS": "https://o.example"},
            ["ALLOWED_HOSTS contains '*'"],
        ),
        (
            {"ALLOWED_HOSTS": "o.example", "CSRF_TRUSTED_ORIGINS": "o.example"},
            ["CSRF_TRUSTED_ORIGINS=o.example: each origin needs its scheme"],
        ),
    ],
)
def test_server_web_refuses_to_start_without_its_host_names(tmp_path, env, named):
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS")
    }
    proc = subprocess.run(
        [ORCHESTRA, "server", "web", "--port", str(_free_port())],
        env={**base, **env, "ORCHESTRA_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc
    assert "the web server will not start" in proc.stderr
    for sentence in named:
        assert sentence in proc.stderr
