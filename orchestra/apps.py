from django.apps import AppConfig


class OrchestraConfig(AppConfig):
    name = "orchestra"
    verbose_name = "Orchestra"
