from django.apps import AppConfig


class SlaConfig(AppConfig):
    name = "sla"
    verbose_name = "SLA and SLO"

    def ready(self) -> None:
        from sla import deadlines  # noqa: F401  (execution signal receivers)
