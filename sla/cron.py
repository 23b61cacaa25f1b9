"""django-crontab entry point (CRONJOBS in settings), for deployments
without Celery beat: ``orchestra manage crontab add`` installs it."""

from __future__ import annotations


def check() -> None:
    from sla.sweep import run

    print(run())
