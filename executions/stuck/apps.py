from django.apps import AppConfig


class StuckConfig(AppConfig):
    """Its own app for its templates and management command; its models
    (CleanupRun, AutoCleanup) stay in ``executions``."""

    name = "executions.stuck"
    label = "stuck"
    verbose_name = "Stuck executions"
