"""The Celery application: executor, workers and beat are all this app."""

import os
import sys

from celery import Celery, signals

from orchestra.lib.syspath import safe_sys_path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings")

app = Celery("orchestra")
# Celery's Django fixup has just put the working directory first on sys.path:
# take it out before any of our apps is imported (orchestra/lib/syspath.py).
sys.path[:] = safe_sys_path(sys.path, os.getcwd())
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _tune_local_broker() -> None:
    # The SQLite-backed broker polls; its interval cannot be passed through
    # broker_transport_options (those reach SQLAlchemy's create_engine).
    from django.conf import settings

    if str(settings.CELERY_BROKER_URL).startswith("sqla+"):
        from kombu.transport import sqlalchemy

        sqlalchemy.Transport.polling_interval = settings.ORCHESTRA_LOCAL_POLLING_SECONDS


app.on_after_configure.connect(lambda sender, **kw: _tune_local_broker())


def _report_sandbox(**kwargs) -> None:
    import logging

    from orchestra.lib import sandbox

    sandbox.report_at_start(logging.getLogger("orchestra.sandbox"))


# A worker says at start what its scripts can reach (loudly when too much).
signals.worker_ready.connect(_report_sandbox, weak=False)
