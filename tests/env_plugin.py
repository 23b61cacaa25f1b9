"""Loaded with ``-p tests.env_plugin`` before Django's settings are read:
every test process (each pytest-xdist worker too) gets its own data folder
(SQLite files, the local broker, storage, mail) and its own Redis keys."""

import os
import tempfile

# Set by pytest-xdist in its worker processes ("gw0", "gw1", ...), before plugins load.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")

if not os.environ.get("ORCHESTRA_TEST_KEEP_HOME"):
    os.environ["ORCHESTRA_HOME"] = tempfile.mkdtemp(
        prefix=f"orchestra-test-{XDIST_WORKER}-" if XDIST_WORKER else "orchestra-test-"
    )
elif XDIST_WORKER:
    home = os.path.join(os.environ["ORCHESTRA_HOME"], XDIST_WORKER)
    os.makedirs(home, exist_ok=True)
    os.environ["ORCHESTRA_HOME"] = home
if XDIST_WORKER:
    # With Redis, the real workers, beat and CLI processes a test starts inherit
    # this: they see only their own xdist worker's queues and control messages
    # (task run ids are per-database integers, so shared queues would cross over).
    os.environ["ORCHESTRA_BROKER_KEY_PREFIX"] = f"orchestra-test-{XDIST_WORKER}:"
# Short liveness settings: tests wait seconds, not minutes.
os.environ.setdefault("ORCHESTRA_HEARTBEAT_SECONDS", "0.5")
os.environ.setdefault("ORCHESTRA_MISSED_HEARTBEATS", "3")
os.environ.setdefault("ORCHESTRA_LIVENESS_SWEEP_SECONDS", "1")
os.environ.setdefault("ORCHESTRA_KILL_GRACE_SECONDS", "5")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# Namespace secrets are encrypted with this key (one per test run, inherited by
# the workers and CLI processes the tests start).
if not os.environ.get("ORCHESTRA_SECRETS_KEY"):
    import base64

    os.environ["ORCHESTRA_SECRETS_KEY"] = base64.urlsafe_b64encode(
        os.urandom(32)
    ).decode()


def pytest_load_initial_conftests(early_config, parser, args):
    """Run in parallel by default: ``-n auto`` (one process per CPU; the
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` variable overrides the count) unless the
    command line chooses (``-n 0``, ``-n 4``, ``--dist ...``) or turns xdist
    off (``-p no:xdist``). In ``addopts`` the option would break ``-p no:xdist``."""
    if XDIST_WORKER or not early_config.pluginmanager.hasplugin("xdist"):
        return
    chosen = ("-n", "--numprocesses", "--dist", "-d", "--tx")
    if any(a == c or a.startswith(c) for a in args for c in chosen):
        return
    args[:] = ["-n", "auto", "--dist", "loadgroup", *args]
