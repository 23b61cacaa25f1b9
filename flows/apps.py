from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"

    def ready(self) -> None:
        # Stored namespace secrets are masked like environment ones; lib
        # imports no app, so it is handed the source here.
        from flows.secrets import stored_values
        from orchestra.lib.secrets import set_stored_source

        set_stored_source(stored_values)
