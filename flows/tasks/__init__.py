"""Task types. Each module declares its types with ``registry.register``;
``resolve_type`` loads them all on first use."""

from flows.tasks.registry import REGISTRY, TaskType, resolve_type  # noqa: F401
