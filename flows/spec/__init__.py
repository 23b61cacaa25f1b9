"""Flow YAML → a validated, immutable FlowSpec, or every error with its place.

Errors name the path (``tasks[2].retry.maxAttempt``), the line and column,
and the closest valid choice.

Over 500 lines: one checker walks the whole document once, collecting every
error; its per-section methods share its state (path, line map, defaults).
Input types already live in ``inputs.py``; triggers in ``flows/triggers.py``.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from flows.expressions import ExpressionError, check_syntax, is_dynamic
from flows.limits import MAX_FLOW_TOKENS, RegexError, compile_regex
from flows.spec.inputs import INPUT_TYPES, convert
from flows.tasks import REGISTRY, TaskType, resolve_type
from flows.triggers import check_triggers
from orchestra.lib.durations import parse_duration
from orchestra.lib.labels import READ_ONLY, SYSTEM_PREFIX, LabelError, label_map
from orchestra.lib.yamlmarks import (
    Located,
    YamlRefused,
    YamlSyntaxError,
    format_path,
    load_located,
)

ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
FLOW_ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
INPUT_ID_RE = re.compile(r"^[a-zA-Z_][\w-]*(\.[a-zA-Z_][\w-]*)*$")
_RUN_TIME_ONLY = re.compile(r"No (filter|test) named", re.IGNORECASE)
# Child task lists every container flowable accepts besides its own.
LOCAL_HANDLERS = {"errors": "list", "finally": "list"}
MAX_NAME = 255  # namespaces, flow and task ids (their database columns)
NAMESPACE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*(\.[a-zA-Z0-9][a-zA-Z0-9_-]*)*$")

FLOW_KEYS = {
    "id",
    "namespace",
    "description",
    "labels",
    "inputs",
    "variables",
    "tasks",
    "errors",
    "finally",
    "afterExecution",
    "triggers",
    "pluginDefaults",
    "taskDefaults",
    "concurrency",
    "sla",
    "disabled",
    "outputs",
    "revision",
    "deleted",
    "listeners",
    "retry",
    "workerGroup",
}
INPUT_KEYS = {
    "id",
    "name",
    "type",
    "description",
    "displayName",
    "defaults",
    "required",
    "values",
    "options",
    "validator",
    "min",
    "max",
    "minLength",
    "maxLength",
    "itemType",
    "allowCustomValue",
    "expression",
    "dependsOn",
    "prefill",
    "extension",
    "after",
    "before",
    "allowedFileExtensions",
    "autoSelectFirst",
}


@dataclass
class FlowError:
    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line else ""
        return f"{where}{self.path}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "message": self.message,
            "line": self.line,
            "column": self.column,
        }


class FlowInvalid(ValueError):
    def __init__(self, errors: list[FlowError], refused: bool = False):
        self.errors = errors
        # Over the YAML budget (size, nesting, aliases): refused unread.
        self.refused = refused
        super().__init__("\n".join(str(e) for e in errors))


@dataclass
class TaskNode:
    id: str
    type: TaskType
    raw: dict[str, Any]
    props: BaseModel
    path: str
    children: dict[str, list[TaskNode]] = field(default_factory=dict)
    case_children: dict[str, list[TaskNode]] = field(default_factory=dict)

    @property
    def flowable(self) -> bool:
        return self.type.flowable

    def walk(self):
        yield self
        for nodes in (*self.children.values(), *self.case_children.values()):
            for node in nodes:
                yield from node.walk()


@dataclass
class FlowSpec:
    id: str
    namespace: str
    source: str
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    tasks: list[TaskNode] = field(default_factory=list)
    errors: list[TaskNode] = field(default_factory=list)
    finally_: list[TaskNode] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    concurrency: dict[str, Any] | None = None
    sla: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    disabled: bool = False
    warnings: list[str] = field(default_factory=list)

    def all_tasks(self):
        for nodes in (self.tasks, self.errors, self.finally_):
            for node in nodes:
                yield from node.walk()

    def task(self, task_id: str) -> TaskNode | None:
        for node in self.all_tasks():
            if node.id == task_id:
                return node
        return None


def _closest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class _Checker:
    def __init__(self, located: Located):
        self.located = located
        self.errors: list[FlowError] = []
        self.warnings: list[str] = []
        self.seen_ids: dict[str, str] = {}
        self.tokens = 0  # of all expressions checked so far

    def error(self, path: tuple, message: str) -> None:
        where = self.located.where(path) or (None, None)
        self.errors.append(FlowError(format_path(path), message, where[0], where[1]))

    # --- tasks ---------------------------------------------------------------
    def task_list(
        self, items: Any, path: tuple, defaults: list[dict]
    ) -> list[TaskNode]:
        if items is None:
            return []
        if not isinstance(items, list):
            self.error(path, "expected a list of tasks")
            return []
        nodes = []
        for index, item in enumerate(items):
            node = self.task(item, (*path, index), defaults)
            if node:
                nodes.append(node)
        return nodes

    def task(self, item: Any, path: tuple, defaults: list[dict]) -> TaskNode | None:
        if not isinstance(item, dict):
            self.error(path, "expected a task (a mapping with 'id' and 'type')")
            return None
        task_id = item.get("id")
        type_name = item.get("type")
        ok = True
        if task_id is None:
            self.error(path, "task has no 'id'")
            ok = False
        elif not isinstance(task_id, str) or not ID_RE.match(task_id):
            self.error(
                (*path, "id"),
                f"invalid task id {task_id!r}: use letters, digits, '_' and '-'",
            )
            ok = False
        elif len(task_id) > MAX_NAME:
            self.error((*path, "id"), f"a task id is at most {MAX_NAME} characters")
            ok = False
        elif task_id in self.seen_ids:
            self.error(
                (*path, "id"),
                f"duplicate task id '{task_id}' (also at {self.seen_ids[task_id]})",
            )
            ok = False
        else:
            self.seen_ids[task_id] = format_path(path)
        if type_name is None:
            self.error(path, "task has no 'type'")
            return None
        task_type = resolve_type(str(type_name))
        if task_type is None:
            suggestions = REGISTRY.suggest(str(type_name))
            hint = f"; did you mean '{suggestions[0]}'?" if suggestions else ""
            known = ", ".join(_known_names())
            self.error(
                (*path, "type"),
                f"unknown task type '{type_name}'{hint} Known types: {known}",
            )
            return None
        data = _apply_defaults(item, task_type, defaults)
        child_fields = task_type.children
        # Kestra's flowables (FlowableTask) carry their own error handlers:
        # ``errors`` run when a child fails for good, ``finally`` always.
        if child_fields:
            child_fields = {**child_fields, **LOCAL_HANDLERS}
            model_data = {k: v for k, v in data.items() if k not in LOCAL_HANDLERS}
        else:
            model_data = data
        try:
            props = task_type.model.model_validate(model_data)
        except ValidationError as exc:
            self._pydantic(exc, path, task_type.model)
            props = None
            ok = False
        # Expressions outside child task lists must parse.
        for key, value in data.items():
            if key in child_fields:
                continue
            self._expressions(value, (*path, key))
        children: dict[str, list[TaskNode]] = {}
        cases: dict[str, list[TaskNode]] = {}
        for field_name, shape in child_fields.items():
            value = data.get(field_name)
            if value is None:
                continue
            if shape == "map":
                if not isinstance(value, dict):
                    self.error(
                        (*path, field_name), "expected a mapping of case → task list"
                    )
                    continue
                for case, tasks in value.items():
                    cases[case_key(case)] = self.task_list(
                        tasks, (*path, field_name, case), defaults
                    )
            else:
                children[field_name] = self.task_list(
                    value, (*path, field_name), defaults
                )
        if not ok or props is None:
            return None
        # Options accepted for compatibility that cannot apply here are reported.
        for note in getattr(props, "validation_warnings", lambda: [])():
            self.warnings.append(f"{format_path(path)} ({task_id}): {note}")
        return TaskNode(
            task_id, task_type, data, props, format_path(path), children, cases
        )

    def _pydantic(
        self, exc: ValidationError, path: tuple, model: type[BaseModel]
    ) -> None:
        for err in exc.errors():
            loc = tuple(err["loc"])
            kind = err["type"]
            if loc == ("id",):
                continue  # the id was checked (with a better message) above
            if kind == "extra_forbidden":
                parent = _model_at(model, loc[:-1])
                names = _field_names(parent) if parent else []
                self.error(
                    (*path, *loc),
                    f"unknown property '{loc[-1]}'{_closest(loc[-1], names)}"
                    + (
                        f" Valid properties: {', '.join(names)}"
                        if not _closest(loc[-1], names) and names
                        else ""
                    ),
                )
            elif kind == "missing":
                self.error((*path, *loc[:-1]), f"missing required property '{loc[-1]}'")
            elif kind == "value_error":
                msg = err["msg"].removeprefix("Value error, ")
                self.error((*path, *loc), msg)
            elif kind == "too_short":
                self.error((*path, *loc), "must not be empty")
            else:
                self.error((*path, *loc), err["msg"])

    def _expressions(self, value: Any, path: tuple) -> None:
        if isinstance(value, str):
            if is_dynamic(value) and self.tokens <= MAX_FLOW_TOKENS:
                try:
                    self.tokens += check_syntax(value)
                except ExpressionError as exc:
                    if _RUN_TIME_ONLY.search(exc.message):
                        # Pebble meets an unknown filter or test only when it
                        # renders: Kestra saves such a flow and fails the task
                        # at run time, and so do we, with a warning now.
                        self.warnings.append(f"{format_path(path)}: {exc.message}")
                    else:
                        self.error(path, exc.message)
                if self.tokens > MAX_FLOW_TOKENS:
                    self.error(
                        path,
                        f"the flow's expressions hold more than {MAX_FLOW_TOKENS:,} "
                        "tokens altogether; the rest were not checked",
                    )
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._expressions(item, (*path, index))
        elif isinstance(value, dict):
            for key, item in value.items():
                self._expressions(item, (*path, key))


def case_key(key: Any) -> str:
    """A Switch case key as the text Kestra compares (its YAML reader keeps
    map keys as written): ``1`` is "1", ``true`` is "true"."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


def _known_names() -> list[str]:
    """Short names, qualified where two types share one (python.Script, shell.Script)."""
    types = sorted(REGISTRY.types.values(), key=lambda t: (t.short, t.name))
    shorts = [t.short for t in types]
    return [
        t.short if shorts.count(t.short) == 1 else ".".join(t.name.rsplit(".", 2)[-2:])
        for t in types
    ]


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = None
        for name, f in current.model_fields.items():
            if part in (name, f.alias):
                info = f
                break
        if info is None:
            return None
        annotation = info.annotation
        candidates = [annotation, *typing.get_args(annotation)]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
            None,
        )
    return (
        current
        if isinstance(current, type) and issubclass(current, BaseModel)
        else None
    )


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _apply_defaults(item: dict, task_type: TaskType, defaults: list[dict]) -> dict:
    if not defaults:
        return item
    data = copy.deepcopy(item)
    for default in defaults:
        prefix = str(default.get("type", ""))
        names = (task_type.name, *task_type.aliases, str(item.get("type")))
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            continue
        for key, value in (default.get("values") or {}).items():
            if default.get("forced") or key not in data:
                data[key] = copy.deepcopy(value)
    return data


def _labels(value: Any, checker: _Checker, path: tuple) -> dict[str, str]:
    try:
        return label_map(value)
    except LabelError as exc:
        where = path if exc.index is None else (*path, exc.index)
        checker.error(where, str(exc))
        return {}


CHILD_FLOW_TYPES = (
    "io.kestra.plugin.core.flow.Subflow",
    "io.kestra.plugin.core.flow.ForEachItem",
)


def _no_self_call(spec: FlowSpec, checker: _Checker) -> None:
    """Kestra's FlowValidator: a flow that starts itself as a subflow would
    recurse forever, so it is invalid (when namespace and flowId are written
    out; an expression is only known at run time)."""
    for node in spec.all_tasks():
        if node.type.name not in CHILD_FLOW_TYPES:
            continue
        if (node.raw.get("namespace"), node.raw.get("flowId")) == (
            spec.namespace,
            spec.id,
        ):
            checker.error(
                tuple(_path_parts(node.path)),
                f"recursive call to flow '{spec.namespace}.{spec.id}': a flow "
                "cannot start itself as a subflow",
            )


def _path_parts(path: str) -> list:
    """``tasks[2].then[0]`` → ``["tasks", 2, "then", 0]``."""
    parts: list = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        parts.append(int(index) if index else name)
    return parts


def _flow_labels(value: Any, checker: _Checker) -> dict[str, str]:
    labels = _labels(value, checker, ("labels",))
    for key in labels:
        # Kestra's FlowValidator: system labels are set by the engine alone.
        if key.startswith(SYSTEM_PREFIX) and key != READ_ONLY:
            checker.error(
                ("labels",),
                f"label '{key}': system labels can only be set by the engine",
            )
    return labels


def _inputs(value: Any, checker: _Checker) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        checker.error(("inputs",), "expected a list of inputs")
        return []
    out, seen = [], set()
    for index, item in enumerate(value):
        path = ("inputs", index)
        if not isinstance(item, dict):
            checker.error(path, "expected an input (a mapping with 'id' and 'type')")
            continue
        for key in item:
            if key not in INPUT_KEYS:
                checker.error(
                    (*path, key),
                    f"unknown input property '{key}'{_closest(key, INPUT_KEYS)}",
                )
        decl = dict(item)
        if "id" not in decl and "name" in decl:
            decl["id"] = decl.pop("name")  # Kestra's older spelling
        name = decl.get("id")
        # Dots nest the value (Kestra): ``nested.string`` is read as
        # ``inputs.nested.string``.
        if not isinstance(name, str) or not INPUT_ID_RE.match(name):
            checker.error(
                path,
                "input needs an 'id' made of letters, digits, '_' or '-', "
                "with '.' between parts",
            )
            continue
        if name in seen:
            checker.error((*path, "id"), f"duplicate input '{name}'")
        seen.add(name)
        kind = str(decl.get("type", "STRING")).upper()
        if kind not in INPUT_TYPES:
            checker.error(
                (*path, "type"),
                f"unknown input type '{decl.get('type')}'{_closest(kind, INPUT_TYPES)} Known: {', '.join(INPUT_TYPES)}",
            )
            continue
        decl["type"] = {"BOOL": "BOOLEAN", "ENUM": "SELECT"}.get(kind, kind)
        if (
            decl["type"] in ("SELECT", "MULTISELECT")
            and not (decl.get("values") or decl.get("options"))
            and not is_dynamic(decl.get("expression"))
        ):
            checker.error(path, f"{decl['type']} input '{name}' needs 'values'")
        if "options" in decl and "values" not in decl:
            decl["values"] = decl["options"]
        if decl.get("validator"):
            try:
                compile_regex(decl["validator"])
            except RegexError as exc:
                checker.error((*path, "validator"), str(exc))
        if decl.get("defaults") is not None and not is_dynamic(decl.get("defaults")):
            try:
                decl["defaults"] = convert(decl, decl["defaults"])
            except ValueError as exc:
                checker.error(
                    (*path, "defaults"), f"default does not fit the type: {exc}"
                )
        out.append(decl)
    return out


SLA_TYPES = ("MAX_DURATION", "EXECUTION_ASSERTION")
SLA_BEHAVIORS = ("FAIL", "CANCEL", "NONE")


def _sla(value: Any, checker: _Checker) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        checker.error(("sla",), "expected a list of SLA definitions")
        return []
    out = []
    seen: dict[str, int] = {}
    for index, item in enumerate(value):
        path = ("sla", index)
        if not isinstance(item, dict):
            checker.error(path, "expected a mapping with 'id', 'type' and 'duration'")
            continue
        if item.get("id") is not None:
            sla_id = str(item["id"])
            if sla_id in seen:
                # Misses and deadlines are keyed by the id: a second one
                # would be silently merged into the first.
                checker.error(
                    (*path, "id"),
                    f"duplicate SLA id '{sla_id}' (also sla[{seen[sla_id]}]); "
                    "each SLA needs its own id",
                )
            seen.setdefault(sla_id, index)
        known = {"id", "type", "duration", "behavior", "labels", "assert"}
        for key in item:
            if key not in known:
                checker.error(
                    (*path, key), f"unknown SLA property '{key}'{_closest(key, known)}"
                )
        kind = str(item.get("type", "")).upper()
        if kind not in SLA_TYPES:
            checker.error(
                (*path, "type"), f"SLA type must be one of {', '.join(SLA_TYPES)}"
            )
            continue
        behavior = str(item.get("behavior", "NONE")).upper()
        if behavior not in SLA_BEHAVIORS:
            checker.error(
                (*path, "behavior"),
                f"behavior must be one of {', '.join(SLA_BEHAVIORS)}",
            )
        entry = {
            "id": str(item.get("id") or f"sla{index}"),
            "type": kind,
            "behavior": behavior,
            "labels": _labels(item.get("labels"), checker, (*path, "labels")),
        }
        if kind == "MAX_DURATION":
            try:
                entry["duration"] = parse_duration(item.get("duration")).total_seconds()
            except ValueError as exc:
                checker.error((*path, "duration"), str(exc))
        else:
            if not is_dynamic(item.get("assert")):
                checker.error(
                    (*path, "assert"),
                    "EXECUTION_ASSERTION needs an 'assert' expression",
                )
            entry["assert"] = item.get("assert")
        out.append(entry)
    return out


def _concurrency(value: Any, checker: _Checker) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        checker.error(
            ("concurrency",), "expected a mapping with 'limit' and 'behavior'"
        )
        return None
    for key in value:
        if key not in ("limit", "behavior"):
            checker.error(
                ("concurrency", key),
                f"unknown property '{key}'{_closest(key, ['limit', 'behavior'])}",
            )
    limit = value.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        checker.error(("concurrency", "limit"), "limit must be a whole number ≥ 1")
        return None
    behavior = str(value.get("behavior", "QUEUE")).upper()
    if behavior not in ("QUEUE", "CANCEL", "FAIL"):
        checker.error(
            ("concurrency", "behavior"), "behavior must be QUEUE, CANCEL or FAIL"
        )
        return None
    return {"limit": limit, "behavior": behavior}


def parse_flow(source: str) -> FlowSpec:
    """Parse and validate; raise FlowInvalid with every error found."""
    try:
        located = load_located(source)
    except YamlSyntaxError as exc:
        raise FlowInvalid(
            [FlowError("(yaml)", exc.message, exc.line, exc.column)],
            refused=isinstance(exc, YamlRefused),
        ) from None
    checker = _Checker(located)
    data = located.data
    if not isinstance(data, dict):
        raise FlowInvalid(
            [
                FlowError(
                    "(root)",
                    "a flow is a YAML mapping with id, namespace and tasks",
                    1,
                    1,
                )
            ]
        )
    for key in data:
        if key not in FLOW_KEYS:
            checker.error(
                (key,), f"unknown flow property '{key}'{_closest(key, FLOW_KEYS)}"
            )
    flow_id = data.get("id")
    namespace = data.get("namespace")
    if flow_id is None:
        checker.error((), "missing required property 'id'")
    elif not isinstance(flow_id, str) or not FLOW_ID_RE.match(flow_id):
        checker.error(
            ("id",),
            f"invalid flow id {flow_id!r}: use letters, digits, '.', '_' and '-'",
        )
    elif len(flow_id) > MAX_NAME:
        checker.error(("id",), f"a flow id is at most {MAX_NAME} characters")
    if namespace is None:
        checker.error((), "missing required property 'namespace'")
    elif not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
        checker.error(
            ("namespace",),
            f"invalid namespace {namespace!r}: dotted words such as company.team",
        )
    elif len(namespace) > MAX_NAME:
        checker.error(("namespace",), f"a namespace is at most {MAX_NAME} characters")
    if not data.get("tasks"):
        checker.error(
            ("tasks",) if "tasks" in data else (),
            "a flow needs at least one task in 'tasks'",
        )
    defaults = data.get("pluginDefaults") or data.get("taskDefaults") or []
    if not isinstance(defaults, list):
        checker.error(("pluginDefaults",), "expected a list of {type, values}")
        defaults = []
    for index, default in enumerate(defaults):
        if (
            not isinstance(default, dict)
            or "type" not in default
            or not isinstance(default.get("values", {}), dict)
        ):
            checker.error(
                ("pluginDefaults", index),
                "each default needs 'type' and a 'values' mapping",
            )
    defaults = [d for d in defaults if isinstance(d, dict)]
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        checker.error(("variables",), "variables must be a mapping")
        variables = {}
    checker._expressions(variables, ("variables",))
    outputs = data.get("outputs") or []
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and "id" in o and "value" in o for o in outputs
    ):
        checker.error(("outputs",), "outputs must be a list of {id, type, value}")
        outputs = []
    checker._expressions(outputs, ("outputs",))
    spec = FlowSpec(
        id=str(flow_id),
        namespace=str(namespace),
        source=source,
        description=str(data.get("description") or ""),
        labels=_flow_labels(data.get("labels"), checker),
        inputs=_inputs(data.get("inputs"), checker),
        variables=variables,
        tasks=checker.task_list(data.get("tasks"), ("tasks",), defaults),
        errors=checker.task_list(data.get("errors"), ("errors",), defaults),
        finally_=checker.task_list(data.get("finally"), ("finally",), defaults),
        concurrency=_concurrency(data.get("concurrency"), checker),
        sla=_sla(data.get("sla"), checker),
        outputs=outputs,
        disabled=bool(data.get("disabled", False)),
    )

    _no_self_call(spec, checker)
    spec.triggers = check_triggers(data.get("triggers"), checker)
    spec.warnings = checker.warnings
    if checker.errors:
        checker.errors.sort(key=lambda e: (e.line or 0, e.column or 0))
        raise FlowInvalid(checker.errors)
    return spec
