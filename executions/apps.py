from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Executions"

    def ready(self) -> None:
        # triggers and concurrency listen to flow saves and execution events.
        from executions import concurrency  # noqa: F401
        from executions.engine import liveness  # noqa: F401  (worker signals)
        from executions.triggers import flow, registry  # noqa: F401
