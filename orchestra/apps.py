from django.apps import AppConfig


class OrchestraConfig(AppConfig):
    name = "orchestra"
    verbose_name = "Orchestra"

    def ready(self) -> None:
        # Every process that runs Django (web, CLI, worker) sends tasks with
        # this app's settings: shared_task binds to it once it is imported.
        from orchestra import celery  # noqa: F401
