"""One registry of task types with Kestra's names, older names and short names."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass
class TaskType:
    name: str  # canonical Kestra name
    model: type[BaseModel]
    kind: str  # "runnable" (worker) or "flowable" (executor)
    run: Callable[..., dict[str, Any] | None] | None = None
    aliases: tuple[str, ...] = ()
    # Properties holding child task lists ({"tasks": "list", "cases": "map"}).
    children: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    # Properties the worker passes unrendered (the task evaluates them itself,
    # with variables of its own, e.g. Count's `expression` with `count`).
    raw_properties: tuple[str, ...] = ()

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def flowable(self) -> bool:
        return self.kind == "flowable"


class Registry:
    def __init__(self) -> None:
        self.types: dict[str, TaskType] = {}
        self._lookup: dict[str, TaskType] = {}
        self._short: dict[str, list[TaskType]] = {}

    def register(self, task_type: TaskType) -> TaskType:
        self.types[task_type.name] = task_type
        for name in (task_type.name, *task_type.aliases):
            self._lookup[name] = task_type
            self._lookup[name.lower()] = task_type
            short = name.rsplit(".", 1)[-1]
            bucket = self._short.setdefault(short.lower(), [])
            if task_type not in bucket:
                bucket.append(task_type)
        return task_type

    def get(self, name: str) -> TaskType | None:
        found = self._lookup.get(name) or self._lookup.get(name.lower())
        if found:
            return found
        # Short names (``Log``) resolve when they are unambiguous.
        bucket = self._short.get(name.lower())
        if bucket and len(bucket) == 1 and "." not in name:
            return bucket[0]
        return None

    def suggest(self, name: str) -> list[str]:
        candidates = list(self._lookup)
        close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
        if not close:
            short = name.rsplit(".", 1)[-1]
            close = difflib.get_close_matches(
                short.lower(), list(self._short), n=3, cutoff=0.6
            )
            close = [self._short[c][0].name for c in close]
        canonical = []
        for c in close:
            t = self._lookup[c]
            if t.name not in canonical:
                canonical.append(t.name)
        if "." not in name:
            # Answer in the user's own spelling: "Slep" -> "Sleep".
            return [self.types[n].short for n in canonical]
        return canonical

    def known_names(self) -> list[str]:
        return sorted(self.types)


REGISTRY = Registry()


def register(
    name: str,
    model: type[BaseModel],
    *,
    run: Callable[..., dict[str, Any] | None] | None = None,
    kind: str = "runnable",
    aliases: tuple[str, ...] | list[str] = (),
    children: dict[str, str] | None = None,
    raw_properties: tuple[str, ...] = (),
    summary: str = "",
) -> TaskType:
    """The one way a module declares a task type: its Kestra name, older
    names in ``aliases`` (short names come from both)."""
    return REGISTRY.register(
        TaskType(
            name=name,
            model=model,
            kind=kind,
            run=run,
            aliases=tuple(aliases),
            children=dict(children or {}),
            summary=summary,
            raw_properties=tuple(raw_properties),
        )
    )
