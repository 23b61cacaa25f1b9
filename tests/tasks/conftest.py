"""Real local servers for task tests: HTTP (http.server) and SMTP (aiosmtpd)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SALES_CSV = "region,amount\nnorth,10\nsouth,32\nnorth,5\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(
        self,
        code: int,
        body: bytes,
        content_type: str = "text/plain",
        headers: dict | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _route(self) -> None:
        body = self._body()
        self.server.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "body": body,
            }
        )
        path = self.path.split("?")[0]
        if path == "/sales.csv":
            self._send(200, SALES_CSV.encode(), "text/csv")
        elif path == "/report":
            self._send(
                200,
                b"%PDF-fake",
                "application/pdf",
                {"Content-Disposition": 'attachment; filename="report-2026.pdf"'},
            )
        elif path == "/echo":
            answer = {
                "method": self.command,
                "body": body.decode(errors="replace"),
                "content_type": self.headers.get("Content-Type", ""),
                "token": self.headers.get("X-Token", ""),
            }
            self._send(
                200,
                json.dumps(answer).encode(),
                "application/json",
                {"X-Served-By": "fixture"},
            )
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"something went wrong upstream")
        elif path == "/slow":
            time.sleep(3)
            self._send(200, b"late")
        elif path == "/empty":
            self._send(200, b"")
        elif path == "/redirect":
            self._send(302, b"", headers={"Location": "/sales.csv"})
        else:
            self._send(404, b"no such page")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _route


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1; ``.url`` is its base, ``.requests`` what it received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.requests = []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) keeping every message it accepts."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Keep(Message):
        def __init__(self):
            super().__init__()
            self.messages = []

        def handle_message(self, message) -> None:
            self.messages.append(message)

    import socket

    with (
        socket.socket() as probe
    ):  # aiosmtpd checks its own port, so it needs a real one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    controller.messages = handler.messages
    controller.port = port
    yield controller
    controller.stop()


@pytest.fixture
def pg_scratch():
    """A scratch schema on a real PostgreSQL server, for the SQL tasks.

    Yields (jdbc_url, schema, connection). The server is the one of
    DATABASE_URL when that is PostgreSQL, else ORCHESTRA_TEST_POSTGRES_URL,
    else the usual local one."""
    import os
    import uuid
    from urllib.parse import urlparse

    from django.conf import settings

    from tests.conftest import _port_open, need

    candidates = [os.environ.get("ORCHESTRA_TEST_POSTGRES_URL", "")]
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        candidates.insert(0, os.environ.get("DATABASE_URL", ""))
    candidates.append("postgres://postgres@127.0.0.1:5432/postgres")
    url = next(u for u in candidates if u)
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5432
    need(_port_open(host, port), f"needs PostgreSQL at {host}:{port} for the SQL tasks")
    import psycopg

    # The server's maintenance database always exists (DATABASE_URL's own
    # database may not: pytest-django works in test_<name>).
    dbname = "postgres"
    conn = psycopg.connect(
        host=host,
        port=port,
        dbname=dbname,
        user=parsed.username or "postgres",
        password=parsed.password or None,
        autocommit=True,
    )
    schema = f"orchestra_t_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE SCHEMA {schema}")
    auth = parsed.username or "postgres"
    jdbc = f"jdbc:postgresql://{host}:{port}/{dbname}"
    try:
        yield {
            "url": jdbc,
            "username": auth,
            "password": parsed.password or "",
            "schema": schema,
            "conn": conn,
        }
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()
