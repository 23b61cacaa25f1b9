"""Task types. Each module defines types and registers them in ``registry``."""

from flows.tasks import control  # noqa: F401  (registers Subflow, ForEachItem, Pause)
from flows.tasks.registry import REGISTRY, TaskType, resolve_type  # noqa: F401
