"""The benchmarks' own PostgreSQL databases, created on first use."""

from __future__ import annotations

from urllib.parse import urlparse, urlunparse


def ensure_database(url: str, *, fresh: bool = False) -> None:
    """Create the database named by ``url`` if missing; with ``fresh``, drop it first."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = urlunparse(parsed._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
