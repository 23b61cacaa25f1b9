"""Loaded with ``-p tests.env_plugin`` before Django's settings are read:
every test run gets its own data folder (SQLite files, storage, mail)."""

import os
import tempfile

if not os.environ.get("ORCHESTRA_TEST_KEEP_HOME"):
    os.environ["ORCHESTRA_HOME"] = tempfile.mkdtemp(prefix="orchestra-test-")
# Short liveness settings: tests wait seconds, not minutes.
os.environ.setdefault("ORCHESTRA_HEARTBEAT_SECONDS", "0.5")
os.environ.setdefault("ORCHESTRA_MISSED_HEARTBEATS", "3")
os.environ.setdefault("ORCHESTRA_LIVENESS_SWEEP_SECONDS", "1")
os.environ.setdefault("ORCHESTRA_KILL_GRACE_SECONDS", "5")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
