"""django-crontab entry point (CRONJOBS in settings), for deployments
without Celery beat: ``orchestra manage crontab add`` installs it."""

from __future__ import annotations

from sla.sweep import run


def check() -> None:
    print(run())
