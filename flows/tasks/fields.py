"""Property types for task models.

Every typed property may instead hold an expression (``"{{ inputs.n }}"``);
it is kept as text when the flow is validated and checked again once the
worker has rendered it. Validators raise plain ValueErrors so the messages
users see are ours, not pydantic's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from flows.expressions import is_dynamic
from orchestra.lib.durations import parse_duration
from orchestra.lib.sizes import parse_size


def _dynamic(parse, schema: dict):
    def validate(value: Any) -> Any:
        if is_dynamic(value):
            return value
        return parse(value)

    return Annotated[Any, PlainValidator(validate), WithJsonSchema(schema)]


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {value!r}")


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected true or false, got {value!r}")


def _duration(value: Any) -> timedelta:
    return parse_duration(value)


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise ValueError(f"expected text, got {type(value).__name__}")


def _list(value: Any) -> list:
    if isinstance(value, list):
        return value
    raise ValueError(f"expected a list, got {type(value).__name__}")


def _dict(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    raise ValueError(f"expected a mapping, got {type(value).__name__}")


DInt = _dynamic(_int, {"type": "integer"})
DFloat = _dynamic(_float, {"type": "number"})
DBool = _dynamic(_bool, {"type": "boolean"})
DDuration = _dynamic(_duration, {"type": "string", "format": "duration"})
DStr = Annotated[Any, PlainValidator(_str), WithJsonSchema({"type": "string"})]
DList = _dynamic(_list, {"type": "array"})
DDict = _dynamic(_dict, {"type": "object"})
DSize = _dynamic(parse_size, {"type": "string", "examples": ["10MB"]})

# A list of child task definitions; validated task by task by the flow spec.
TaskList = Annotated[list[dict[str, Any]], Field(min_length=1)]


def one_of(value: Any, choices: tuple[str, ...], what: str) -> str:
    """``value`` in capitals when it is one of ``choices``; ValueError naming
    them otherwise (for the enumerated properties: fetchType, behavior, ...)."""
    text = str(value).strip().upper()
    if text not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return text


class Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, arbitrary_types_allowed=True
    )


RETRY_TYPES = {
    "constant": "constant",
    "exponential": "exponential",
    "random": "random",
    "io.kestra.plugin.core.retry.constant": "constant",
    "io.kestra.plugin.core.retry.exponential": "exponential",
    "io.kestra.plugin.core.retry.random": "random",
    "io.kestra.core.models.tasks.retrys.constant": "constant",
    "io.kestra.core.models.tasks.retrys.exponential": "exponential",
    "io.kestra.core.models.tasks.retrys.random": "random",
}


def _retry_type(value: Any) -> str:
    key = str(value).strip().lower()
    if key in RETRY_TYPES:
        return RETRY_TYPES[key]
    raise ValueError(
        f"unknown retry type {value!r}; use constant, exponential or random"
    )


UNBOUNDED_ATTEMPTS = 1000


class Retry(Strict):
    type: Annotated[
        str, PlainValidator(_retry_type), WithJsonSchema({"type": "string"})
    ]
    maxAttempt: DInt | None = Field(default=None, alias="maxAttempt")
    maxAttempts: DInt | None = None
    maxDuration: DDuration | None = None
    interval: DDuration | None = None
    maxInterval: DDuration | None = None
    maxDelay: DDuration | None = None
    minInterval: DDuration | None = None
    delayFactor: DFloat | None = None
    warningOnRetry: DBool = False
    behavior: str | None = None

    def attempts_allowed(self) -> int:
        """Total attempts including the first (Kestra's maxAttempt counts all)."""
        value = self.maxAttempt if self.maxAttempt is not None else self.maxAttempts
        if isinstance(value, int):
            return value
        if isinstance(self.maxDuration, timedelta):
            # Kestra: with only maxDuration, retry until that time is spent
            # (the count is a backstop against a zero interval).
            return UNBOUNDED_ATTEMPTS
        return 1

    def delay_before(self, attempt: int) -> timedelta:
        """Delay before attempt number ``attempt`` (2 = first retry)."""
        import random

        base = self.interval or self.minInterval or timedelta(seconds=1)
        if not isinstance(base, timedelta):
            base = timedelta(seconds=1)
        cap = self.maxInterval or self.maxDelay
        if self.type == "exponential":
            factor = (
                self.delayFactor if isinstance(self.delayFactor, int | float) else 2.0
            )
            delay = base * (factor ** max(attempt - 2, 0))
        elif self.type == "random":
            low = (
                self.minInterval
                if isinstance(self.minInterval, timedelta)
                else timedelta(0)
            )
            high = cap if isinstance(cap, timedelta) else base
            delay = low + (high - low) * random.random()
        else:
            delay = base
        if isinstance(cap, timedelta) and delay > cap:
            delay = cap
        return delay


class BaseTask(Strict):
    """Properties every task accepts."""

    id: str
    type: str
    description: str | None = None
    retry: Retry | None = None
    timeout: DDuration | None = None
    disabled: bool = False
    allowFailure: bool = False
    allowWarning: bool = False
    runIf: Any = None
    logLevel: str | None = None
    logToFile: bool = False
    workerGroup: dict | None = None
    # Worker lost while running it: run it again on another worker (default),
    # or fail at once when running it twice is unsafe.
    resubmitOnWorkerLoss: bool = True
    # Kestra's older condition list on tasks; Expression conditions act as runIf.
    conditions: list[dict[str, Any]] | None = None

    def validation_warnings(self) -> list[str]:
        """Accepted options that will not act as written (shown when validating)."""
        notes = []
        for index, condition in enumerate(self.conditions or []):
            if not isinstance(condition, dict) or "expression" not in condition:
                kind = (
                    condition.get("type") if isinstance(condition, dict) else condition
                )
                notes.append(
                    f"conditions[{index}]: only Expression conditions apply to a "
                    f"task (as runIf); '{kind}' is ignored"
                )
        return notes
