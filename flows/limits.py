"""What one expression may cost: bounded numbers, strings, loops and regexes.

Expressions are user code. The web process only parses them (validation
never evaluates: Jinja's constant folding is off), and wherever they are
evaluated — the worker, the executor, a webhook's conditions — each render
runs under a :class:`Budget`:

- ``**``, ``*``, ``+``, ``%`` and ``~`` refuse results over the caps below
  *before* computing them (``10**(10**7)``, ``'x' * 10**9``);
- ``range`` is capped, every loop iteration and every call counts a step,
  and every step may check a deadline and a stop callback (a kill or the
  task's timeout in the worker), so a render can be interrupted;
- what a render prints (``{{ }}`` and block captures) is capped in total;
- regexes run on RE2 (linear time, no catastrophic backtracking).

Memory stays bounded because no single value can outgrow the caps and a
render cannot produce more than MAX_OUTPUT characters; a render that would
needs more steps than MAX_STEPS first. The figures are in bench/dos.py.
"""

from __future__ import annotations

import contextvars
import math
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import re2

MAX_INT_BITS = 8192  # about 2466 decimal digits
MAX_LENGTH = 1_000_000  # characters or items made by one * or +
MAX_CONCAT = 10_000_000  # characters made by one ~ or join of a block
MAX_OUTPUT = 10_000_000  # characters one render may print in total
MAX_RANGE = 100_000
MAX_STEPS = 2_000_000  # loop iterations + calls in one render
MAX_NESTING = 64  # brackets inside one {{ }} / {% %}
MAX_TOKENS = 2_000  # tokens of one template string
MAX_FLOW_TOKENS = 20_000  # tokens of all the expressions of one flow
DEFAULT_SECONDS = 10.0  # wall-clock time of one render unless told otherwise
CHECK_EVERY = 0.25  # seconds between two calls of the stop callback


class LimitError(ValueError):
    """An expression went over a bound; the message says which and how."""


@dataclass
class Budget:
    deadline: float
    check: Callable[[], None] | None = None
    steps: int = 0
    printed: int = 0
    _next_check: float = field(default=0.0)

    def step(self, cost: int = 1) -> None:
        self.steps += cost
        if self.steps > MAX_STEPS:
            raise LimitError(
                f"expression takes more than {MAX_STEPS:,} steps (loop iterations "
                "and calls); simplify it or move the work into a script task"
            )
        if self.steps & 0xFF == 0 or cost > 1:
            self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self.deadline:
            raise LimitError("expression took too long to evaluate and was stopped")
        if self.check is not None and now >= self._next_check:
            self._next_check = now + CHECK_EVERY
            self.check()  # raises (TaskKilled) when the task must stop

    def printing(self, size: int) -> None:
        self.printed += size
        if self.printed > MAX_OUTPUT:
            raise LimitError(f"expression prints more than {MAX_OUTPUT:,} characters")


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "orchestra_expression_budget", default=None
)


class budget:
    """``with budget(seconds, check):`` renders inside run under one Budget
    (nested uses join the outer one, so a render cannot reset its limits)."""

    def __init__(
        self, seconds: float | None = None, check: Callable[[], None] | None = None
    ):
        self.seconds = DEFAULT_SECONDS if seconds is None else seconds
        self.check = check
        self.token = None

    def __enter__(self) -> Budget:
        outer = _current.get()
        if outer is not None:
            return outer
        made = Budget(time.monotonic() + self.seconds, self.check)
        self.token = _current.set(made)
        return made

    def __exit__(self, *exc: Any) -> None:
        if self.token is not None:
            _current.reset(self.token)


def current() -> Budget:
    found = _current.get()
    if found is None:  # outside render() (a test): the caps hold, steps don't add up
        return Budget(time.monotonic() + DEFAULT_SECONDS)
    return found


# --- operators -----------------------------------------------------------------
def bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def _too_long(what: str, size: float, cap: int) -> LimitError:
    return LimitError(
        f"{what} would make {size:,.0f} characters or items (at most {cap:,})"
    )


def _check_power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0:
        if abs(left) > 1 and right * math.log2(abs(left)) > MAX_INT_BITS:
            raise LimitError(
                f"{left} ** {right} is too large (results are kept under "
                f"{MAX_INT_BITS} bits, about {int(MAX_INT_BITS * 0.30103)} digits)"
            )


def _check_times(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if bits(left) + bits(right) > MAX_INT_BITS:
            raise LimitError(f"a product over {MAX_INT_BITS} bits is too large")
        return
    for seq, count in ((left, right), (right, left)):
        size = _length(seq)
        if size is not None and isinstance(count, int) and size * count > MAX_LENGTH:
            raise _too_long("repeating a value", size * count, MAX_LENGTH)


def _check_plus(left: Any, right: Any) -> None:
    a, b = _length(left), _length(right)
    if a is not None and b is not None and a + b > MAX_CONCAT:
        raise _too_long("joining two values", a + b, MAX_CONCAT)


_WIDTH = re.compile(r"\d{7,}")  # a width or precision of a million or more


def check_format(text: Any) -> None:
    """``'%999999999d' % 1`` and ``'{:>999999999}'.format(1)`` would build
    huge strings: refuse format strings with such widths."""
    if isinstance(text, str) and _WIDTH.search(text):
        raise LimitError("a format width or precision of a million or more is refused")


def _check_mod(left: Any, right: Any) -> None:
    check_format(left)


CHECKS = {"**": _check_power, "*": _check_times, "+": _check_plus, "%": _check_mod}
OPERATORS = {
    "**": operator.pow,
    "*": operator.mul,
    "+": operator.add,
    "%": operator.mod,
    "//": operator.floordiv,
    "/": operator.truediv,
    "-": operator.sub,
}


def binop(op: str, left: Any, right: Any) -> Any:
    current().step()
    CHECKS.get(op, lambda a, b: None)(left, right)
    return OPERATORS[op](left, right)


def concat(parts: Iterable[Any]) -> str:
    """``environment.concat``: joins block captures and macro bodies."""
    items = list(parts)
    size = sum(len(p) for p in items if isinstance(p, str))
    if size > MAX_CONCAT:
        raise _too_long("this block", size, MAX_CONCAT)
    return "".join(items)


def join_values(values: Iterable[Any]) -> str:
    """The ``~`` operator."""
    items = [str(v) for v in values]
    size = sum(len(p) for p in items)
    if size > MAX_CONCAT:
        raise _too_long("joining with ~", size, MAX_CONCAT)
    return "".join(items)


def stepped(iterable: Any) -> Iterator[Any]:
    """Every ``{% for %}`` iterates through this: one step per item."""
    spend = current().step
    for item in iterable:
        spend()
        yield item


def bounded_range(*args: int) -> range:
    span = range(*args)
    if len(span) > MAX_RANGE:
        raise LimitError(f"range() of {len(span):,} numbers (at most {MAX_RANGE:,})")
    return span


# Builtin methods whose integer argument is the size of what they build.
_SIZED_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}


def check_call(obj: Any, args: tuple, kwargs: dict) -> None:
    """Called for every call in an expression (the sandbox's ``call``)."""
    current().step()
    name = getattr(obj, "__name__", "")
    owner = getattr(obj, "__self__", None)
    if owner is None:  # the sandbox wraps str.format in a function
        owner = getattr(getattr(obj, "__wrapped__", None), "__self__", None)
    if isinstance(owner, str | bytes):
        if name in ("format", "format_map"):
            check_format(owner)
        numbers = [a for a in (*args, *kwargs.values()) if isinstance(a, int)]
        if name in _SIZED_METHODS and any(n > MAX_LENGTH for n in numbers):
            raise _too_long(f"{name}()", max(numbers), MAX_LENGTH)
        if name == "replace" and len(args) >= 2:
            grow = owner.count(args[0]) * len(args[1])
            if len(owner) + grow > MAX_CONCAT:
                raise _too_long("replace()", len(owner) + grow, MAX_CONCAT)
        if name == "join" and args and isinstance(args[0], list | tuple):
            size = sum(len(x) for x in args[0] if isinstance(x, str | bytes))
            size += len(owner) * max(len(args[0]) - 1, 0)
            if size > MAX_CONCAT:
                raise _too_long("join()", size, MAX_CONCAT)


# --- regular expressions -------------------------------------------------------
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class RegexError(ValueError):
    pass


def compile_regex(pattern: str):
    """RE2: linear time on any input. Backreferences and lookarounds, which
    need backtracking, are refused with a message that says so."""
    try:
        return re2.compile(str(pattern), _RE2_OPTIONS)
    except re2.error as exc:
        detail = (
            exc.args[0].decode()
            if exc.args and isinstance(exc.args[0], bytes)
            else str(exc)
        )
        raise RegexError(
            f"invalid regular expression {str(pattern)!r}: {detail} (regexes run on "
            "RE2, which has no backreferences or lookarounds)"
        ) from None
