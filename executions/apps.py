from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Executions"

    def ready(self) -> None:
        # liveness: worker signals; waiting: a child's end advances its parent.
        from executions.engine import liveness, waiting  # noqa: F401
