# The Celery app is imported when Django starts (OrchestraConfig.ready), not
# with this package: `orchestra --help` then starts without Celery or Django.
# `celery -A orchestra` finds it as orchestra.celery:app.


def __getattr__(name: str):
    if name == "celery_app":
        from .celery import app

        return app
    raise AttributeError(f"module 'orchestra' has no attribute {name!r}")
