"""Delete: remove an ended execution with its task runs, logs and history."""

from __future__ import annotations

import logging

from django.db import transaction

from executions.lifecycle import rules
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import locked

audit = logging.getLogger("orchestra.audit")


@transaction.atomic
def delete_execution(execution_id: int, *, actor: Actor, reason: str = "") -> int:
    """A running execution must be killed first, so nothing keeps working on
    a row that no longer exists. Its history goes with it, so the deletion is
    written to the ``orchestra.audit`` log. Returns the id deleted."""
    execution = locked(execution_id)
    rules.check("delete", execution, actor)
    audit.info(
        "execution %s (%s.%s, %s) deleted by %s via %s: %s",
        execution.pk,
        execution.namespace,
        execution.flow_id,
        execution.state,
        actor.name,
        actor.via,
        reason or "no reason given",
    )
    execution.delete()
    return execution_id
