"""Labels: add or change an execution's labels (Labels task, SLA, people)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from executions.lifecycle import machine, rules
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import locked
from executions.models import Execution
from orchestra.lib.labels import format_labels
from orchestra.lib.secrets import mask


@transaction.atomic
def set_labels(
    execution_id: int, labels: dict[str, str], *, actor: Actor, reason: str = ""
) -> Execution:
    execution = locked(execution_id)
    rules.check("labels", execution, actor)
    labels = mask(labels)
    # Not a state change, but an action on the execution: its history row
    # (same state both sides) keeps who changed which labels.
    shown = format_labels(labels)
    machine.record_history(
        [
            machine.Entry(
                execution.pk,
                execution.state,
                from_state=execution.state,
                reason=reason or f"labels set: {shown}",
                details={"labels": labels},
            )
        ],
        actor=actor,
    )
    execution.labels = {**(execution.labels or {}), **labels}
    execution.progress_at = timezone.now()
    execution.save(update_fields=["labels", "progress_at"])
    return execution
