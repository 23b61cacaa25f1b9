"""Bulk kill / restart / delete: preview what would happen, then do exactly that.

The web confirmation page and ``POST /api/executions/bulk`` both call
``preview`` and ``apply``; both judge each execution with ``rules``, the
same table the buttons and the verbs read, so the preview's "will be
restarted" is what the restart then does. ``apply`` acts only on the ids it
is given (the ones the preview listed), re-checks each one, and reports
every id it skipped and why — a row that finished or moved since the
preview is skipped, never acted on blindly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import ObjectDoesNotExist

from executions.filters import visible_executions
from executions.lifecycle import delete, restart, rules, stop
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError
from executions.lifecycle.machine import IllegalTransition, StaleState
from executions.models import Execution

# At most this many executions in one bulk action ("all matching" included).
MAX_BULK = 500


@dataclass(frozen=True)
class BulkAction:
    name: str
    call: Callable[..., object]

    @property
    def rule(self) -> rules.Rule:
        return rules.rule(self.name)

    @property
    def verb(self) -> str:
        """'will be <verb>', '3 execution(s) <verb>'."""
        return self.rule.done

    @property
    def destructive(self) -> bool:
        """Kill and delete lose work; a restart runs it again (not red)."""
        return self.name != "restart"

    def refusal(self, user, execution: Execution) -> str:
        """Why this action cannot apply to ``execution`` ('' when it can)."""
        return rules.refusal(self.name, execution, user)


BULK_ACTIONS = {
    "kill": BulkAction("kill", stop.kill),
    "restart": BulkAction("restart", restart.restart),
    "delete": BulkAction("delete", delete.delete_execution),
}


@dataclass
class PlannedRow:
    execution: Execution
    refusal: str

    @property
    def will_act(self) -> bool:
        return not self.refusal


@dataclass
class Preview:
    action: BulkAction
    rows: list[PlannedRow]
    truncated: bool = False

    @property
    def acting(self) -> list[PlannedRow]:
        return [r for r in self.rows if r.will_act]

    @property
    def skipped(self) -> list[PlannedRow]:
        return [r for r in self.rows if not r.will_act]


@dataclass
class Result:
    action: str
    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        verb = BULK_ACTIONS[self.action].verb
        text = f"{len(self.done)} execution(s) {verb}"
        if self.skipped:
            text += f", {len(self.skipped)} skipped"
        return text

    def as_dict(self) -> dict:
        return {
            "action": self.action,
            "count": len(self.done),
            "execution_ids": self.done,
            "skipped": [{"id": k, "reason": v} for k, v in self.skipped.items()],
            "message": self.message,
        }


def get_action(name: str) -> BulkAction:
    action = BULK_ACTIONS.get(name)
    if action is None:
        known = ", ".join(BULK_ACTIONS)
        raise ActionError(f"unknown bulk action {name!r}; use one of: {known}")
    return action


def preview(user, name: str, executions) -> Preview:
    """What ``name`` would do to each of ``executions`` (a queryset the user may see)."""
    action = get_action(name)
    rows = list(executions.order_by("-created_at", "-id")[: MAX_BULK + 1])
    truncated = len(rows) > MAX_BULK
    rows = rows[:MAX_BULK]
    return Preview(
        action, [PlannedRow(e, action.refusal(user, e)) for e in rows], truncated
    )


def preview_ids(user, name: str, ids: list[int]) -> Preview:
    return preview(user, name, visible_executions(user).filter(pk__in=ids[:MAX_BULK]))


def apply(actor: Actor, name: str, ids: list[int], *, reason: str = "") -> Result:
    """Carry out ``name`` on exactly ``ids``, re-checking each one first
    (the verb checks again under the row lock)."""
    action = get_action(name)
    result = Result(name)
    wanted = list(dict.fromkeys(ids))[:MAX_BULK]
    found = {e.pk: e for e in visible_executions(actor.user).filter(pk__in=wanted)}
    for pk in wanted:
        execution = found.get(pk)
        if execution is None:
            result.skipped[pk] = "not found"
            continue
        refusal = action.refusal(actor.user, execution)
        if refusal:
            result.skipped[pk] = refusal
            continue
        try:
            action.call(pk, actor=actor, reason=reason or f"bulk {name}")
        except (ActionError, IllegalTransition, StaleState, ObjectDoesNotExist) as exc:
            result.skipped[pk] = str(exc)
            continue
        result.done.append(pk)
    return result
