from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Executions"

    def ready(self) -> None:
        # triggers and admission (concurrency) listen to flow saves and execution events;
        # liveness: worker signals; subflows: a child's end advances its parent.
        from executions.engine import liveness, subflows  # noqa: F401
        from executions.lifecycle import admission  # noqa: F401
        from executions.triggers import flow, registry  # noqa: F401
