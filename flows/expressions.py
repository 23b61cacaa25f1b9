"""Expressions: ``{{ ... }}`` rendered in Jinja2's sandbox with the names,
filters and functions Kestra users write in Pebble.

Pebble-isms handled here:
- task ids with hyphens (``outputs.my-task.value``) are rewritten to subscripts;
- Java date patterns in ``date('yyyy-MM-dd')``;
- ``default`` also replaces null and empty strings;
- the null-coalescing operator ``a ?? b`` (``b`` when ``a`` is null or undefined,
  however deep the missing part of ``a`` is);
- datetimes print as ISO-8601 (``2026-01-02T03:04:05Z``), as Kestra prints them.

Over 500 lines: the Pebble-compatible filters and functions are registered on
the one sandboxed environment built here (``_make_env``), and several other
modules import this module's date and JSON helpers; moving the filters to a
module of their own is a possible later split, not needed for the layering.
"""

from __future__ import annotations

import base64
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import (
    ChainableUndefined,
    StrictUndefined,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    nodes,
    pass_context,
)
from jinja2 import nodes as jinja_nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from flows import limits, pebble
from orchestra.lib import secrets as secret_values
from orchestra.lib.dates import parse_datetime
from orchestra.lib.durations import parse_duration, to_iso


class ExpressionError(ValueError):
    """An expression could not be parsed or evaluated."""

    def __init__(self, message: str, expression: str = ""):
        super().__init__(message)
        self.message = message
        self.expression = expression


_BLOCK = re.compile(r"({{.*?}}|{%.*?%})", re.DOTALL)
_ROOTS = ("outputs", "inputs", "vars", "labels", "trigger", "tasks")
_HYPHEN_PATH = re.compile(
    r"(?<![\w.'\"])(" + "|".join(_ROOTS) + r")\.([A-Za-z_][\w]*(?:-[\w]+)+)"
)
_STRING = re.compile(r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")


def _rewrite_hyphens(code: str) -> str:
    # Leave string literals alone: only rewrite the code between them.
    parts = _STRING.split(code)
    for i in range(0, len(parts), 2):
        parts[i] = _HYPHEN_PATH.sub(lambda m: f"{m.group(1)}['{m.group(2)}']", parts[i])
    return "".join(parts)


def preprocess(template: str) -> str:
    if "??" in template:
        template = _BLOCK.sub(lambda m: _rewrite_coalesce(m.group(0)), template)
    if "-" not in template:
        return template
    return _BLOCK.sub(lambda m: _rewrite_hyphens(m.group(0)), template)


_OPENERS = "([{"


def _skip_string(code: str, i: int) -> int:
    """Index just past the string literal that starts at ``code[i]``."""
    match = _STRING.match(code, i)
    return match.end() if match else len(code)


def _skip_group(code: str, i: int) -> int:
    """Index just past the bracketed group that starts at ``code[i]``."""
    depth = 0
    while i < len(code):
        ch = code[i]
        if ch in "'\"":
            i = _skip_string(code, i)
            continue
        if ch in _OPENERS:
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _operand_end(code: str, i: int) -> int:
    """End of the operand right of ``??``: a literal, a name with its
    ``.attr``/``[key]``/``(args)`` suffixes, or a bracketed group."""
    while i < len(code) and code[i].isspace():
        i += 1
    if i < len(code) and code[i] in "'\"":
        return _skip_string(code, i)
    while i < len(code):
        ch = code[i]
        hyphen = (  # a task id such as outputs.my-task, not a subtraction
            ch == "-" and code[i - 1 : i].isalnum() and code[i + 1 : i + 2].isalpha()
        )
        if ch.isalnum() or ch in "_." or hyphen:
            i += 1
        elif ch in _OPENERS:
            i = _skip_group(code, i)
        else:
            break
    return i


def _rewrite_coalesce(block: str) -> str:
    """``a ?? b`` → ``a | __coalesce(b)``: the filter binds to the operand on
    its left as ``??`` does in the usual ``{{ inputs.x ?? 'none' }}``."""
    out, i = [], 0
    while i < len(block):
        ch = block[i]
        if ch in "'\"":
            end = _skip_string(block, i)
            out.append(block[i:end])
            i = end
        elif block.startswith("??", i):
            end = _operand_end(block, i + 2)
            out.append(f"| __coalesce({block[i + 2 : end].strip()})")
            i = end
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _coalesce(value: Any, fallback: Any) -> Any:
    if value is None or isinstance(value, Undefined):
        return fallback
    return value


def is_dynamic(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


# --- Java date patterns -------------------------------------------------------
_JAVA_TOKENS = [
    ("yyyy", "%Y"),
    ("uuuu", "%Y"),
    ("yy", "%y"),
    ("MMMM", "%B"),
    ("MMM", "%b"),
    ("MM", "%m"),
    ("M", "{M}"),
    ("dd", "%d"),
    ("d", "{d}"),
    ("HH", "%H"),
    ("H", "{H}"),
    ("hh", "%I"),
    ("h", "{h}"),
    ("mm", "%M"),
    ("ss", "%S"),
    ("SSSSSS", "%f"),
    ("SSS", "{SSS}"),
    ("EEEE", "%A"),
    ("EEE", "%a"),
    ("E", "%a"),
    ("a", "%p"),
    ("XXX", "{XXX}"),
    ("xxx", "{XXX}"),
    ("X", "{X}"),
    ("Z", "%z"),
    ("z", "%Z"),
    ("DDD", "%j"),
    ("D", "{D}"),
    ("ww", "%V"),
]


def java_to_strftime(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            end = pattern.find("'", i + 1)
            if end == -1:
                end = len(pattern)
            literal = pattern[i + 1 : end] or "'"
            out.append(literal.replace("%", "%%"))
            i = end + 1
            continue
        for token, repl in _JAVA_TOKENS:
            if pattern.startswith(token, i):
                out.append(repl)
                i += len(token)
                break
        else:
            out.append("%%" if ch == "%" else ch)
            i += 1
    return "".join(out)


def _to_datetime(value: Any) -> datetime:
    """A date filter's operand; numbers are epoch seconds (or millis when
    large), as in Kestra."""
    if not isinstance(value, str | int | float | date):
        raise ExpressionError(f"date: cannot read a date from {type(value).__name__}")
    try:
        return parse_datetime(value, epoch=True)
    except ValueError as exc:
        raise ExpressionError(f"date: {exc}") from None


def _tz(name: str | None):
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ExpressionError(f"unknown time zone {name!r}") from None


def filter_date(
    value: Any,
    format: str = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
    timeZone: str | None = None,
) -> str:  # noqa: A002
    moment = _to_datetime(value)
    zone = _tz(timeZone)
    if zone:
        moment = moment.astimezone(zone)
    # Named formats Kestra offers besides patterns.
    named = {
        "iso": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
        "iso_date": "yyyy-MM-dd",
        "iso_date_time": "yyyy-MM-dd'T'HH:mm:ssXXX",
        "sql": "yyyy-MM-dd HH:mm:ss.SSS",
    }
    format = named.get(format, format)  # noqa: A001
    if format == "epoch" or format == "timestamp":
        return str(int(moment.timestamp()))
    offset = moment.strftime("%z")
    xxx = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    result = moment.strftime(java_to_strftime(format))
    return (
        result.replace("{SSS}", f"{moment.microsecond // 1000:03d}")
        .replace("{XXX}", xxx)
        .replace("{X}", "Z" if xxx == "Z" else offset[:3])
        .replace("{M}", str(moment.month))
        .replace("{d}", str(moment.day))
        .replace("{H}", str(moment.hour))
        .replace("{h}", str(moment.hour % 12 or 12))
        .replace("{D}", str(moment.timetuple().tm_yday))
    )


_UNITS = {
    "NANOS": "microseconds",
    "MICROS": "microseconds",
    "MILLIS": "milliseconds",
    "SECONDS": "seconds",
    "MINUTES": "minutes",
    "HOURS": "hours",
    "DAYS": "days",
    "WEEKS": "weeks",
}


def filter_date_add(value: Any, amount: int, unit: str = "DAYS") -> datetime:
    moment = _to_datetime(value)
    unit_up = str(unit).upper()
    if unit_up in ("MONTHS", "YEARS"):
        months = int(amount) * (12 if unit_up == "YEARS" else 1)
        month0 = moment.month - 1 + months
        year, month = moment.year + month0 // 12, month0 % 12 + 1
        return moment.replace(year=year, month=month, day=min(moment.day, 28))
    if unit_up not in _UNITS:
        raise ExpressionError(
            f"dateAdd: unknown unit {unit!r}; use one of {', '.join(_UNITS)}"
        )
    factor = 0.001 if unit_up == "NANOS" else 1
    return moment + timedelta(**{_UNITS[unit_up]: int(amount) * factor})


def filter_default(value: Any, fallback: Any = "", boolean: bool = False) -> Any:
    from jinja2 import Undefined

    if isinstance(value, Undefined) or value is None or value == "":
        return fallback
    if boolean and not value:
        return fallback
    return value


def to_json(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return format_native(value)
    if isinstance(value, timedelta):
        return to_iso(value)
    if isinstance(value, set | tuple):
        return list(value)
    if isinstance(value, Mapping):  # a lazily loaded map (the engine's outputs)
        return dict(value)
    return str(value)


def from_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ExpressionError(
            f"fromJson: not valid JSON ({exc.msg} at char {exc.pos})"
        ) from None


def filter_number(value: Any, type: str | None = None) -> int | float:  # noqa: A002
    try:
        if type and type.upper() in ("INT", "INTEGER", "LONG"):
            return int(float(value))
        if type and type.upper() in ("FLOAT", "DOUBLE", "BIGDECIMAL"):
            return float(value)
        text = str(value)
        return int(text) if re.fullmatch(r"[+-]?\d+", text.strip()) else float(text)
    except (TypeError, ValueError):
        raise ExpressionError(f"number: {value!r} is not a number") from None


def filter_replace(value: Any, old: Any, new: Any = None, regexp: bool = False) -> str:
    text = str(value)
    if isinstance(old, Mapping):  # Pebble: replace({'a': 'b'})
        for k, v in old.items():
            text = text.replace(str(k), str(v))
        return text
    if regexp:
        try:
            pattern = limits.compile_regex(str(old))
        except limits.RegexError as exc:
            raise ExpressionError(f"replace: {exc}") from None
        return pattern.sub(str(new), text)
    old, new = str(old), "" if new is None else str(new)
    limits.check_call(text.replace, (old, new), {})
    return text.replace(old, new)


def _sized(name: str, builtin):
    """A Jinja filter whose width argument sets the size of its result."""

    def bounded(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width > limits.MAX_LENGTH:
            raise limits.LimitError(
                f"{name}: a width of {width:,} is refused (at most {limits.MAX_LENGTH:,})"
            )
        return builtin(value, width, *args, **kwargs)

    return bounded


def filter_format(value: Any, *args: Any, **kwargs: Any) -> str:
    limits.check_format(value)
    return FILTERS["format"](value, *args, **kwargs)


def filter_abbreviate(value: Any, length: int) -> str:
    text = str(value)
    return text if len(text) <= length else text[: max(length - 3, 0)] + "..."


def filter_slugify(value: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-")


def filter_keys(value: Mapping) -> list:
    return list(value.keys())


def filter_values(value: Mapping) -> list:
    return list(value.values())


def filter_duration_seconds(value: Any) -> float:
    return parse_duration(value).total_seconds()


# The engine puts a SecretScope under this name: ``secret()`` resolves in the
# execution's namespace. A template cannot build one (it has no public
# attribute and is checked by type), so it cannot claim another namespace.
SECRETS_KEY = "_secrets"


class SecretScope:
    """Built by flows/secrets.py ``scope()``: the namespace and how to resolve
    a name in it (this module imports no model)."""

    __slots__ = ("_namespace", "_resolve")

    def __init__(self, namespace: str, resolve) -> None:
        self._namespace = namespace
        self._resolve = resolve


@pass_context
def secret(context: Any, name: Any) -> str:
    """``secret('NAME')``: the namespace's secret (nearest namespace first),
    else a global one (see flows/secrets.py, orchestra/lib/secrets.py)."""
    scope = context.get(SECRETS_KEY)
    try:
        if isinstance(scope, SecretScope):
            return scope._resolve(scope._namespace, name)
        value = secret_values.read_global(name)
    except secret_values.SecretError as exc:
        raise ExpressionError(str(exc)) from None
    if value is None:
        raise ExpressionError(
            f"secret({str(name)[:60]!r}) is not set: outside a flow's execution only "
            f"global secrets are readable (SECRET_{str(name)[:60]} listed in "
            f"{secret_values.GLOBAL_LIST})"
        )
    return value


# The engine puts an object under this name in the expression context that
# opens the execution's files (executions.storage.ExecutionFiles); ``flows``
# does not import the engine.
FILES_KEY = "_files"


class FileAccess:
    """What the engine puts under FILES_KEY. Its only attribute starts with
    '_', which Jinja's sandbox refuses, so a template can call read() and
    friends but never reach the object behind them (or save files)."""

    __slots__ = ("_source",)

    def __init__(self, source: Any) -> None:
        self._source = source  # read(uri) -> bytes, size(uri), exists(uri)


def _files(context: Any, function: str, path: Any):
    access = context.get(FILES_KEY)
    if not isinstance(access, FileAccess):
        raise ExpressionError(
            f"{function}() reads files of a running execution; there is none here"
        )
    return access._source


def _file_call(context: Any, function: str, path: Any, op):
    files = _files(context, function, path)
    try:
        return op(files, str(path))
    except ValueError as exc:  # StorageError: not a storage URI, missing, not ours
        raise ExpressionError(f"{function}({str(path)!r}): {exc}") from None


@pass_context
def fn_read(context: Any, path: Any, encoding: str = "utf-8") -> str:
    """Kestra's ``read(uri)``: the text of a file in internal storage."""
    return _file_call(
        context, "read", path, lambda f, p: f.read(p).decode(encoding, errors="replace")
    )


@pass_context
def fn_file_size(context: Any, path: Any) -> int:
    return _file_call(context, "fileSize", path, lambda f, p: f.size(p))


@pass_context
def fn_file_exists(context: Any, path: Any) -> bool:
    return _file_call(context, "fileExists", path, lambda f, p: f.exists(p))


@pass_context
def fn_is_file_empty(context: Any, path: Any) -> bool:
    return _file_call(context, "isFileEmpty", path, lambda f, p: f.size(p) == 0)


def format_native(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        text = value.isoformat(
            timespec="milliseconds" if value.microsecond else "seconds"
        )
        return text.replace("+00:00", "Z")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return to_iso(value)
    return value


def _finalize(value: Any) -> Any:
    value = format_native(value)
    if isinstance(value, Mapping | list):
        value = to_json(value)
    elif value is None:
        value = ""
    elif isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, int) and limits.bits(value) > limits.MAX_INT_BITS:
        raise limits.LimitError("a number too large to print")
    limits.current().printing(len(value) if isinstance(value, str) else 16)
    return value


class _ChainableStrictUndefined(ChainableUndefined, StrictUndefined):
    """Missing names chain (``a.b.c`` of a missing ``a`` is just undefined)
    so ``??`` can test them, and fail as usual as soon as they are used."""

    __slots__ = ()


class _Bounded(NodeTransformer):
    """Every ``{% for %}`` iterates through ``__stepped`` (one step per item,
    with the deadline checks) and every ``~`` joins through ``__join``
    (size-capped): see flows/limits.py."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(
            nodes.Name("__stepped", "load"), [node.iter], [], None, None
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(
            nodes.Name("__join", "load"), [nodes.List(node.nodes)], [], None, None
        )


class _Environment(ImmutableSandboxedEnvironment):
    # Arithmetic that can build huge values goes through call_binop.
    intercepted_binops = frozenset(limits.CHECKS)
    concat = staticmethod(limits.concat)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Flow data is maps: ``outputs.vals.values`` means the "values" key,
        # not dict.values (Jinja tries attributes first).
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return limits.binop(operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        limits.check_call(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def format_string(self, s: str, args: Any, kwargs: Any, format_func=None) -> str:
        limits.check_format(s)
        return super().format_string(s, args, kwargs, format_func)

    def _generate(self, source, name, filename, defer_init=False):
        return super()._generate(
            _Bounded().visit(source), name, filename, defer_init=defer_init
        )


def _make_env(undefined: type[Undefined] = StrictUndefined) -> _Environment:
    env = _Environment(
        undefined=undefined,
        finalize=_finalize,
        autoescape=False,
        keep_trailing_newline=True,
        # No constant folding: compiling (validation, in the web process)
        # must never run user code such as ``{{ 10 ** 10 ** 7 }}``.
        optimized=False,
    )
    env.filters.update(
        {
            "date": filter_date,
            "dateAdd": filter_date_add,
            "default": filter_default,
            "d": filter_default,
            "json": to_json,
            "toJson": to_json,
            "jsonEncode": to_json,
            "fromJson": from_json,
            "jsonDecode": from_json,
            "number": filter_number,
            "replace": filter_replace,
            "abbreviate": filter_abbreviate,
            "slugify": filter_slugify,
            "keys": filter_keys,
            "values": filter_values,
            "toIon": to_json,
            "base64encode": lambda v: base64.b64encode(str(v).encode()).decode(),
            "base64decode": lambda v: base64.b64decode(str(v)).decode(),
            "timestampMillis": lambda v: int(_to_datetime(v).timestamp() * 1000),
            "timestamp": lambda v: int(_to_datetime(v).timestamp()),
            "startsWith": lambda v, p: str(v).startswith(str(p)),
            "endsWith": lambda v, p: str(v).endswith(str(p)),
            "durationSeconds": filter_duration_seconds,
            "__coalesce": _coalesce,
            "center": _sized("center", FILTERS["center"]),
            "indent": _sized("indent", FILTERS["indent"]),
            "slice": _sized("slice", FILTERS["slice"]),
            "format": filter_format,
        }
    )
    env.tests.update(
        {
            "null": lambda v: v is None,
            "empty": lambda v: v is None or (hasattr(v, "__len__") and len(v) == 0),
        }
    )
    env.globals.update(
        {
            "now": lambda timeZone=None: datetime.now(_tz(timeZone) or UTC),
            "json": from_json,
            "fromJson": from_json,
            "secret": secret,
            "range": lambda *a: list(limits.bounded_range(*a)),
            "__stepped": limits.stepped,
            "__join": limits.join_values,
            "printContext": lambda: "",
            "read": fn_read,
            "fileSize": fn_file_size,
            "fileExists": fn_file_exists,
            "isFileEmpty": fn_is_file_empty,
        }
    )
    # Pebble-only names (flows/pebble.py).
    env.globals.update(pebble.GLOBALS)
    env.tests.update(pebble.TESTS)
    env.filters.update(pebble.FILTERS)
    env.globals.pop("lipsum", None)  # lipsum(n) builds n paragraphs
    return env


ENV = _make_env()
# Templates with ``??`` only: elsewhere a missing name fails where it is read.
COALESCE_ENV = _make_env(_ChainableStrictUndefined)


def _env(template: str) -> _Environment:
    return COALESCE_ENV if "??" in template else ENV


# Compiled templates, least recently used first. Bounded by count and by the
# size of the sources kept (a template is compiled Python code, several times
# the size of its source).
_cache: OrderedDict[str, Any] = OrderedDict()
CACHE_ENTRIES = 2000
CACHE_MAX_SOURCE = 16 * 1024  # longer templates are compiled each time


def _compile(template: str):
    compiled = _cache.get(template)
    if compiled is not None:
        _cache.move_to_end(template)
        return compiled
    _check_size(template)
    try:
        compiled = _env(template).from_string(preprocess(template))
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"invalid expression: {exc.message}", template) from None
    except (RecursionError, MemoryError, SyntaxError):
        raise ExpressionError(
            "invalid expression: nested too deeply to compile", template
        ) from None
    if len(template) <= CACHE_MAX_SOURCE:
        _cache[template] = compiled
        if len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return compiled


def _check_nesting(template: str) -> None:
    """Refuse ``(((((…)))))`` before Jinja's recursive parser meets it."""
    depth = deepest = 0
    for part in _STRING.split(template)[::2]:  # outside string literals
        for ch in part:
            if ch in "([{":
                depth += 1
                deepest = max(deepest, depth)
            elif ch in ")]}":
                depth -= 1
    if deepest > limits.MAX_NESTING + 2:  # the {{ }} delimiters count too
        raise ExpressionError(
            f"invalid expression: brackets nested more than {limits.MAX_NESTING} deep",
            template,
        )


def check_syntax(template: str) -> int:
    """Raise ExpressionError if ``template`` does not parse; return how many
    tokens it has (flow validation bounds their sum).

    Only parses: validation, in the web process, neither generates nor
    caches code, and never runs any of it."""
    if not is_dynamic(template):
        return 0
    tokens = _check_size(template)
    env = _env(template)
    try:
        tree = env.parse(preprocess(template))
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"invalid expression: {exc.message}", template) from None
    except (RecursionError, MemoryError):
        raise ExpressionError(
            "invalid expression: nested too deeply to compile", template
        ) from None
    # Unknown filters and tests, found in the parsed tree (Jinja itself only
    # finds them when it compiles, which validation does not do).
    for node in tree.find_all((jinja_nodes.Filter, jinja_nodes.Test)):
        kind, known = (
            ("filter", env.filters)
            if isinstance(node, jinja_nodes.Filter)
            else ("test", env.tests)
        )
        if node.name not in known:
            raise ExpressionError(
                f"invalid expression: No {kind} named {node.name!r}.", template
            )
    return tokens


def _check_size(template: str) -> int:
    """Tokens of ``template`` (lexing is cheap; parsing and compiling a huge
    expression took seconds), after the nesting check."""
    _check_nesting(template)
    count = 0
    try:
        for _ in _env(template).lex(preprocess(template)):
            count += 1
            if count > limits.MAX_TOKENS:
                raise ExpressionError(
                    f"invalid expression: longer than {limits.MAX_TOKENS:,} tokens; "
                    "split it, or compute the value in a script task",
                    template,
                )
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"invalid expression: {exc.message}", template) from None
    return count


def _explain(exc: Exception, template: str) -> ExpressionError:
    message = str(exc)
    match = re.search(r"'([\w.]+) object' has no attribute '([^']+)'", message)
    if match:
        message = f"{match.group(2)!r} is not defined here"
    match = re.match(r"'([^']+)' is undefined", message)
    if match:
        message = f"{match.group(1)!r} is not defined"
    return ExpressionError(f"cannot render {template.strip()!r}: {message}", template)


# What a failing expression raises, explained to the user by ``_explain``.
_RENDER_ERRORS = (
    UndefinedError,
    SecurityError,
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
    ZeroDivisionError,
    OverflowError,
    RecursionError,
    MemoryError,
)


def render(
    template: Any,
    context: Mapping[str, Any],
    *,
    seconds: float | None = None,
    check: Callable[[], None] | None = None,
) -> Any:
    """Render strings (recursively through lists and dicts) to strings.

    All of it runs under one budget (flows/limits.py): at most ``seconds``
    of wall time, and ``check`` (which raises to stop, e.g. on a kill) is
    called every quarter of a second while it runs."""
    with limits.budget(seconds, check):
        return _render(template, context)


def _render(template: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(template, str):
        if not is_dynamic(template):
            return template
        compiled = _compile(template)
        try:
            return compiled.render(context)
        except ExpressionError:
            raise
        except _RENDER_ERRORS as exc:
            raise _explain(exc, template) from None
    if isinstance(template, list):
        return [_render(item, context) for item in template]
    if isinstance(template, dict):
        return {key: _render(value, context) for key, value in template.items()}
    return template


_SINGLE = re.compile(r"^\s*{{(.*)}}\s*$", re.DOTALL)


def evaluate(
    template: Any,
    context: Mapping[str, Any],
    *,
    seconds: float | None = None,
    check: Callable[[], None] | None = None,
) -> Any:
    """Like render, but a string that is one ``{{ expr }}`` keeps the native
    value (list, dict, number, bool) — for ForEach values, If conditions, etc."""
    with limits.budget(seconds, check):
        return _evaluate(template, context)


def _evaluate(template: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(template, str):
        match = _SINGLE.match(template)
        if match and "{{" not in match.group(1) and "}}" not in match.group(1):
            source = preprocess("{{" + match.group(1) + "}}")[2:-2]
            _check_nesting(template)
            try:
                expr = _env(match.group(1)).compile_expression(
                    source, undefined_to_none=False
                )
            except TemplateSyntaxError as exc:
                raise ExpressionError(
                    f"invalid expression: {exc.message}", template
                ) from None
            except (RecursionError, MemoryError, SyntaxError):
                raise ExpressionError(
                    "invalid expression: nested too deeply to compile", template
                ) from None
            try:
                value = expr(**context)
                str(value)  # StrictUndefined raises here when a name is missing
                return value
            except ExpressionError:
                raise
            except _RENDER_ERRORS as exc:
                raise _explain(exc, template) from None
        return _render(template, context)
    if isinstance(template, list):
        return [_evaluate(item, context) for item in template]
    if isinstance(template, dict):
        return {key: _evaluate(value, context) for key, value in template.items()}
    return template


# Kestra's TruthUtils: the rendered text of a condition is false when it is
# one of these, true otherwise ("no", "null", "False" are true).
FALSE_TEXTS = ("false", "0", "-0", "")


def truthy(value: Any) -> bool:
    """Truth of a condition as Kestra decides it from its rendered text
    (surrounding white space aside: a YAML block scalar ends in a newline)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        return value.strip() not in FALSE_TEXTS
    return (
        True  # a number with a fraction, a list or a mapping renders as non-empty text
    )


def referenced_names(template: str) -> set[str]:
    """Top-level names an expression reads (used for validation hints)."""
    try:
        _check_nesting(template)
        ast = _env(template).parse(preprocess(template))
    except (TemplateSyntaxError, ExpressionError, RecursionError):
        return set()
    return {node.name for node in ast.find_all(nodes.Name)}
