"""Task types. Each module defines types and registers them in ``registry``."""

from flows.tasks.registry import REGISTRY, TaskType, resolve_type  # noqa: F401
