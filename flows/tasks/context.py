"""What a task may do, as the engine hands it over.

Task types reach the world only through this interface, which keeps ``flows``
free of engine imports. The engine's implementation lives in
``executions/engine/context.py``.
"""

from __future__ import annotations

from typing import IO, Any, Protocol


class TaskFailed(Exception):
    """The task ran and failed; the message is shown to users."""


class TaskKilled(Exception):
    """The execution was killed or the task timed out while running."""


class RunContext(Protocol):
    execution_id: int
    taskrun_id: int
    task_id: str
    attempt: int
    warnings: list[str]
    # Expression variables of the task run (inputs, outputs, execution, ...).
    variables: dict[str, Any]

    def render(self, value: Any) -> Any: ...
    def evaluate(self, value: Any) -> Any: ...
    def log(self, level: str, message: str) -> None: ...
    def sleep(self, seconds: float) -> None:
        """Wait, waking early to raise TaskKilled on kill or timeout."""

    def check_alive(self) -> None:
        """Raise TaskKilled when the task should stop."""

    def set_labels(self, labels: dict[str, str]) -> None: ...
    def put_file(self, name: str, data: bytes | IO[bytes]) -> str:
        """Store bytes (or an open binary file) in internal storage; return the
        ``kestra://`` URI."""

    def read_file(self, uri: str) -> bytes: ...
    def query_executions(self, **filters: Any) -> list[dict[str, Any]]:
        """Executions as Lookup rows (executions/lookup.py); ValueError on a bad filter."""

    def count_executions(self, **filters: Any) -> list[dict[str, Any]]:
        """``{namespace, flowId, count}`` per flow; ValueError on a bad filter."""


def warn_in_logs(ctx: RunContext, message: str) -> None:
    """Log a warning that must be seen but does not by itself make the run
    WARNING (an option that cannot apply here, stderr output, ...)."""
    ctx.log("WARN", message)
    if message in ctx.warnings:
        ctx.warnings.remove(message)
