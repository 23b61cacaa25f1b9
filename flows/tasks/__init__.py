"""Task types. Each module declares its types with ``registry.register``;
``resolve_type`` loads them all on first use."""

from flows.tasks.registry import REGISTRY, TaskType

__all__ = ["REGISTRY", "TaskType", "resolve_type"]


def resolve_type(name: str) -> TaskType | None:
    # Imported on the first lookup, not at start: these modules pull in
    # httpx, smtplib, SQLAlchemy and subprocess helpers that a CLI word or a
    # web request that never parses a flow does not need. (They import
    # ``flows.tasks.registry``, not this package, so this forms no cycle.)
    from flows.tasks import (  # noqa: F401  (each registers its built-in types)
        conditions,
        control,
        core,
        execution,
        http,
        jdbc,
        mail,
        scripts,
    )

    return REGISTRY.get(name)
