"""Creating the execution a trigger asks for, the same way for every kind."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError
from executions.lifecycle.start import create_execution
from executions.models import Cause, Execution, TriggerEvent
from flows.expressions import SECRETS_KEY, ExpressionError, render
from flows.models import FlowRevision
from flows.secrets import scope as secret_scope
from flows.spec.inputs import InputError
from flows.triggers import TRIGGER_TYPES
from orchestra.lib.secrets import mask

TYPE_NAMES = {kind: names[0] for kind, names in TRIGGER_TYPES.items()}


class TriggerError(ValueError):
    """The trigger's execution could not be created; the message says why."""


def execution_for_trigger(
    revision: FlowRevision,
    decl: dict[str, Any],
    variables: dict[str, Any],
    *,
    actor: Actor,
    labels: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Execution:
    """Render the trigger's inputs and labels (``{{ trigger.* }}`` available)
    and create the execution. Raises TriggerError; nothing is stored then."""
    context = {
        "trigger": variables,
        "flow": {
            "id": revision.flow.flow_id,
            "namespace": revision.flow.namespace,
            "revision": revision.revision,
        },
        SECRETS_KEY: secret_scope(revision.flow.namespace),
    }
    try:
        inputs = render(decl.get("inputs") or {}, context)
        all_labels = {
            **{
                str(k): str(v)
                for k, v in render(decl.get("labels") or {}, context).items()
            },
            **(labels or {}),
        }
    except ExpressionError as exc:
        raise TriggerError(mask(f"trigger '{decl['id']}': {exc.message}")) from None
    # Stored and shown: a secret a trigger renders into them is masked.
    inputs, all_labels = mask(inputs), mask(all_labels)
    trigger = {
        "id": decl["id"],
        "type": TYPE_NAMES[decl["kind"]],
        "variables": variables,
        **(extra or {}),
    }
    try:
        # create_execution is atomic itself: on an error it leaves nothing behind.
        return create_execution(
            revision,
            inputs=inputs,
            labels=all_labels,
            trigger=trigger,
            actor=actor,
        )
    except InputError as exc:
        raise TriggerError(f"trigger '{decl['id']}' gives bad inputs: {exc}") from None
    except ActionError as exc:
        raise TriggerError(str(exc)) from None


def trigger_actor(name: str) -> Actor:
    """The trigger itself as the actor: ``schedule:<id>``, ``webhook:<id>``,
    ``flow:<namespace>.<flow>``."""
    return Actor.system(name, Cause.TRIGGER)


def latest_revision(namespace: str, flow_id: str) -> FlowRevision | None:
    """The current revision of a live flow, with its flow, in one query."""
    return (
        FlowRevision.objects.select_related("flow")
        .filter(
            flow__namespace=namespace,
            flow__flow_id=flow_id,
            flow__deleted=False,
            revision=F("flow__revision"),
        )
        .first()
    )


def claim(**fields: Any) -> TriggerEvent | None:
    """Insert the event row, or return None when the unique constraint says
    this date or this source execution has fired already."""
    try:
        with transaction.atomic():
            return TriggerEvent.objects.create(**fields)
    except IntegrityError:
        return None
