"""A bad environment value stops ``orchestra`` with one line naming it."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "ORCHESTRA_HEARTBEAT_SECONDS",
            "abc",
            "ORCHESTRA_HEARTBEAT_SECONDS='abc' is not a number",
        ),
        (
            "ORCHESTRA_MISSED_HEARTBEATS",
            "1",
            "ORCHESTRA_MISSED_HEARTBEATS='1' must be at least 2",
        ),
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        (
            "DATABASE_URL",
            "mysql://app:s3cret@db/x",
            "DATABASE_URL='mysql://app:***@db/x' has an unsupported scheme 'mysql'",
        ),
        (
            "DATABASE_URL",
            "postgres://[::1",
            "DATABASE_URL='postgres://[::1' is not a valid URL",
        ),
        (
            "CELERY_BROKER_URL",
            "kafka://k:9092",
            "CELERY_BROKER_URL='kafka://k:9092' has an unsupported",
        ),
        (
            "ORCHESTRA_SECRET_KEY_FILE",
            "/no/such/key",
            "ORCHESTRA_SECRET_KEY_FILE='/no/such/key'",
        ),
    ],
)
def test_a_bad_value_names_the_variable_and_exits_2(cli, name, value, message):
    r = cli("flows", "list", env={name: value})
    assert r.code == 2, r
    assert r.out == ""
    assert r.err.splitlines() == [r.err.strip()], "one line, no traceback"
    assert r.err.startswith(f"orchestra: configuration error: {message}"), r
    assert "s3cret" not in r.err


def test_an_unreachable_database_is_one_line_without_the_password(cli):
    r = cli(
        "flows",
        "list",
        env={"DATABASE_URL": "postgres://app:s3cret@127.0.0.1:1/orchestra"},
    )
    assert r.code == 1, r
    assert len(r.err.strip().splitlines()) == 1, r
    assert r.err.startswith(
        "orchestra: database error (DATABASE_URL=postgres://app:***@127.0.0.1:1/orchestra): "
        "connection failed"
    ), r
    assert "s3cret" not in r.err and "Traceback" not in r.err
