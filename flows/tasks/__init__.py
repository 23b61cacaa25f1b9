"""Task types. Each module defines types and registers them in ``registry``."""

from flows.tasks import control  # noqa: F401  (registers Subflow, ForEachItem, Pause)
from flows.tasks.registry import REGISTRY, TaskType

__all__ = ["REGISTRY", "TaskType", "resolve_type"]


def resolve_type(name: str) -> TaskType | None:
    # Imported on the first lookup, not at start: these modules pull in
    # httpx, smtplib, SQLAlchemy and subprocess helpers that a CLI word or a
    # web request that never parses a flow does not need. (They import
    # ``flows.tasks.registry``, not this package, so this forms no cycle.)
    from flows.tasks import (  # noqa: F401  (registers the built-in types)
        conditions,
        core,
        execution,
        http,
        jdbc,
        mail,
        scripts,
    )

    return REGISTRY.get(name)
