"""What every verb shares: its error, and how it loads the execution it acts on."""

from __future__ import annotations

from executions.models import Execution
from flows.spec import FlowInvalid, FlowSpec


class ActionError(ValueError):
    """A request that cannot be carried out; the message says why."""


class FlowNotFound(ActionError):
    pass


def locked(execution_id: int) -> Execution:
    """The execution, row-locked until the end of the transaction."""
    execution = (
        Execution.objects.select_for_update(of=("self",))
        .select_related("flow_revision")
        .filter(pk=execution_id)
        .first()
    )
    if execution is None:
        raise ActionError(f"execution {execution_id} does not exist")
    return execution


def spec_of(execution: Execution) -> FlowSpec:
    """The flow definition the execution ran, or an ActionError saying why not."""
    try:
        return execution.spec
    except FlowInvalid as exc:
        raise ActionError(
            f"execution {execution.pk} has no usable flow definition ({exc}); "
            "execute the flow again instead"
        ) from None
