"""A throwaway database for ``orchestra flows test``.

A test run is "in-process, no server": its execution, task runs, logs and
worker row must not land in the installation's database, where they would
show in lists, overview counts and recent failures (with Restart buttons for
a run nobody can restart). Inside ``scratch_database()`` the default database
alias points at a fresh SQLite file in a temporary folder, holding a copy of
the deployed flows (so Subflow and Lookup find them) and nothing else; on the
way out the folder is removed and the live connection is back as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections

from flows.models import Flow, FlowRevision, Namespace

# Read from the live database and copied, in this order (foreign keys).
COPIED = (Namespace, Flow, FlowRevision)


@contextmanager
def scratch_database() -> Iterator[Path]:
    """Point the default alias (every thread's) at a temporary SQLite file."""
    copies = {model: list(model.objects.all()) for model in COPIED}
    folder = Path(tempfile.mkdtemp(prefix="orchestra-test-"))
    path = folder / "scratch.sqlite3"
    live_settings = connections.settings[DEFAULT_DB_ALIAS]
    live_connection = connections[DEFAULT_DB_ALIAS]
    scratch = connections.configure_settings(
        {
            DEFAULT_DB_ALIAS: {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(path),
                "OPTIONS": {
                    "init_command": "PRAGMA journal_mode=WAL;",
                    "transaction_mode": "IMMEDIATE",
                    "timeout": 30,
                },
            }
        }
    )[DEFAULT_DB_ALIAS]
    # The settings dict is shared by every thread: the in-process runner's
    # threads open their connections on the scratch file too.
    connections.settings[DEFAULT_DB_ALIAS] = scratch
    del connections[DEFAULT_DB_ALIAS]
    try:
        _create_schema()
        for model, rows in copies.items():
            model.objects.bulk_create(rows)
        yield path
    finally:
        connections[DEFAULT_DB_ALIAS].close()
        connections.settings[DEFAULT_DB_ALIAS] = live_settings
        connections[DEFAULT_DB_ALIAS] = live_connection
        shutil.rmtree(folder, ignore_errors=True)


def _create_schema() -> None:
    """Every model's table, straight from the models: faster than replaying
    the migrations, and a scratch file needs no data migration."""
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.schema_editor() as editor:
        for model in apps.get_models():
            if model._meta.managed and not model._meta.proxy:
                editor.create_model(model)
