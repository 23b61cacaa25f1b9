"""Task types. Each module defines types and registers them in ``registry``."""

from flows.tasks import execution  # noqa: F401  (registers Lookup, Count)
from flows.tasks.registry import REGISTRY, TaskType, resolve_type  # noqa: F401
