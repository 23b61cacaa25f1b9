"""The Celery application: executor, workers and beat are all this app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings")

app = Celery("orchestra")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
