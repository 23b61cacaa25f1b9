"""YAML loading that remembers where every key and value stood in the text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass
class Located:
    data: Any
    # path -> (line, column), both 1-based; keys point at the key itself.
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path) -> tuple[int, int] | None:
        """Closest known position for ``path`` (walks up to the parent)."""
        path = tuple(path)
        while True:
            if path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
            if not path:
                return None
            path = path[:-1]


class YamlSyntaxError(ValueError):
    def __init__(self, message: str, line: int | None, column: int | None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class YamlRefused(YamlSyntaxError):
    """A document over the size, nesting or alias budget: not read at all."""


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so ``id: yes`` or
    ``country: NO`` stay strings, as in Kestra (Java, YAML 1.2)."""


Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


# What one document may hold. A flow of a few hundred tasks is far below
# these; an alias bomb (``b: [*a, *a, ...]`` nine levels deep: 470 bytes that
# expand to 387 million values) is refused at the first bound it meets.
# PyYAML's pure-Python parser reads about 100 KB/s on a busy machine: a flow
# is rarely over 20 KB, and 128 KiB keeps the worst parse near a second.
MAX_BYTES = 128 * 1024
MAX_DEPTH = 64
MAX_VALUES = 200_000  # values after expanding aliases and merge keys
MAX_REPEATED = 10_000  # values reached a second time through an alias


class _BoundedLoader(Yaml12Loader):
    """Composes with a nesting bound (PyYAML's composer is recursive)."""

    depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                event = self.peek_event()
                raise YamlRefused(
                    f"invalid YAML: nested more than {MAX_DEPTH} levels deep",
                    event.start_mark.line + 1,
                    event.start_mark.column + 1,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _compose(text: str) -> yaml.Node | None:
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


_QUOTED = re.compile(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"|#[^\n]*")
_BRACKETS = re.compile(r"[\[\]{}]")


def _check_flow_depth(text: str) -> None:
    """``[[[[…]]]]`` is refused before the scanner meets it: PyYAML scans
    nested flow collections in quadratic time, long before the composer's
    depth bound would stop it. Brackets in quotes and comments do not count;
    ``{{ }}`` in plain values counts two, far below the bound."""
    depth = 0
    for bracket in _BRACKETS.findall(_QUOTED.sub("", text)):
        depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
        if depth > MAX_DEPTH:
            raise YamlRefused(
                f"invalid YAML: nested more than {MAX_DEPTH} levels deep", None, None
            )


def load_located(text: str) -> Located:
    """Parse one YAML document; raise YamlSyntaxError with line/column."""
    if len(text) > MAX_BYTES:
        raise YamlRefused(
            f"invalid YAML: the document is larger than {MAX_BYTES // 1024} KiB "
            f"({len(text):,} characters)",
            None,
            None,
        )
    _check_flow_depth(text)
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise YamlSyntaxError(
            f"invalid YAML: {problem}",
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"invalid YAML: {exc}", None, None) from None
    located = Located(data=None)
    if node is None:
        return located
    constructor = Yaml12Loader("")
    located.data = _build(node, (), located, constructor, _Count())
    return located


def load_bounded(text: str) -> Any:
    """The data of one YAML document, under the same bounds as flows."""
    return load_located(text).data


class _Count:
    def __init__(self) -> None:
        self.values = 0
        self.repeated = 0
        self.seen: set[int] = set()
        self.merged: dict[int, int] = {}

    def visit(self, node: yaml.Node) -> None:
        self.values += 1
        if id(node) in self.seen:
            self.repeated += 1
        else:
            self.seen.add(id(node))
        if self.repeated > MAX_REPEATED or self.values > MAX_VALUES:
            what = (
                f"aliases (*name) repeat more than {MAX_REPEATED:,} values"
                if self.repeated > MAX_REPEATED
                else f"the document holds more than {MAX_VALUES:,} values"
            )
            raise YamlRefused(
                f"invalid YAML: {what}; write the values out or use fewer aliases",
                node.start_mark.line + 1,
                node.start_mark.column + 1,
            )

    def merged_size(self, node: yaml.Node) -> int:
        """Pairs of a mapping once its ``<<`` merge keys are flattened,
        counted before PyYAML builds them (merges of merges multiply)."""
        if not isinstance(node, yaml.MappingNode):
            return 1
        if id(node) not in self.merged:
            self.merged[id(node)] = 0  # a merge cycle counts as nothing more
            total = 0
            for key_node, value_node in node.value:
                if key_node.tag != "tag:yaml.org,2002:merge":
                    total += 1
                elif isinstance(value_node, yaml.SequenceNode):
                    total += sum(self.merged_size(v) for v in value_node.value)
                else:
                    total += self.merged_size(value_node)
                if total > MAX_VALUES:
                    break
            self.merged[id(node)] = total
        return self.merged[id(node)]


def _build(
    node: yaml.Node, path: Path, located: Located, constructor, count: _Count
) -> Any:
    count.visit(node)
    located.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        if count.merged_size(node) > MAX_VALUES:
            raise YamlRefused(
                f"invalid YAML: merge keys (<<) expand to more than {MAX_VALUES:,} values",
                node.start_mark.line + 1,
                node.start_mark.column + 1,
            )
        constructor.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlSyntaxError(
                    "invalid YAML: a key must be a plain value, not a list or mapping",
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
            key = _scalar(key_node, constructor)
            if not isinstance(key, str | int | float | bool) or key is None:
                key = str(key)
            key_path = (*path, key)
            if key in out:
                raise YamlSyntaxError(
                    f"invalid YAML: duplicate key {key!r} in {format_path(path)}",
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
            located.keys[key_path] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            out[key] = _build(value_node, key_path, located, constructor, count)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(child, (*path, index), located, constructor, count)
            for index, child in enumerate(node.value)
        ]
    return _scalar(node, constructor)


def _scalar(node: yaml.Node, constructor) -> Any:
    try:
        return constructor.construct_object(node, deep=True)
    except (ValueError, OverflowError, yaml.YAMLError) as exc:
        # e.g. 2026-13-45 reads as a timestamp with month 13
        raise YamlSyntaxError(
            f"invalid YAML: {node.value!r} cannot be read ({exc})",
            node.start_mark.line + 1,
            node.start_mark.column + 1,
        ) from None
