"""Bulk kill / restart / delete: preview what would happen, then do exactly that.

The web confirmation page and ``POST /api/executions/bulk`` both call
``preview`` and ``apply``. ``apply`` acts only on the ids it is given (the
ones the preview listed), re-checks each one, and reports every id it
skipped and why — a row that finished or moved since the preview is
skipped, never acted on blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ObjectDoesNotExist

from accounts import roles
from executions import actions
from executions.filters import visible_executions
from executions.models import TERMINAL, Execution, State
from executions.states import IllegalTransition, StaleState

# At most this many executions in one bulk action ("all matching" included).
MAX_BULK = 500

RESTARTABLE = frozenset({State.FAILED, State.KILLED, State.CANCELLED, State.WARNING})


@dataclass(frozen=True)
class BulkAction:
    name: str
    role: str
    verb: str  # "will be <verb>" / "<verb>"

    def refusal(self, user, execution: Execution) -> str:
        """Why this action cannot apply to ``execution`` ('' when it can)."""
        if not roles.has_role(user, execution.namespace, self.role):
            return f"you need the {self.role} role on namespace {execution.namespace}"
        state = execution.state
        if self.name == "kill" and state in TERMINAL:
            return f"already ended ({state})"
        if self.name == "kill" and state == State.KILLING:
            return "already being killed"
        if self.name == "restart" and state not in RESTARTABLE:
            return f"only failed, killed, cancelled or warning executions restart (this one is {state})"
        if self.name == "delete" and state not in TERMINAL:
            return f"still {state}; kill it first"
        return ""


ACTION_FUNCTIONS = {"kill": "kill", "restart": "restart", "delete": "delete_execution"}
BULK_ACTIONS = {
    "kill": BulkAction("kill", roles.OPERATOR, "killed"),
    "restart": BulkAction("restart", roles.OPERATOR, "restarted"),
    "delete": BulkAction("delete", roles.EDITOR, "deleted"),
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
        raise actions.ActionError(f"unknown bulk action {name!r}; use one of: {known}")
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


def apply(user, name: str, ids: list[int], *, cause: str, reason: str = "") -> Result:
    """Carry out ``name`` on exactly ``ids``, re-checking each one first."""
    action = get_action(name)
    function = getattr(actions, ACTION_FUNCTIONS[name])
    actor = user.get_username()
    result = Result(name)
    wanted = list(dict.fromkeys(ids))[:MAX_BULK]
    found = {e.pk: e for e in visible_executions(user).filter(pk__in=wanted)}
    for pk in wanted:
        execution = found.get(pk)
        if execution is None:
            result.skipped[pk] = "not found"
            continue
        refusal = action.refusal(user, execution)
        if refusal:
            result.skipped[pk] = refusal
            continue
        try:
            if name == "kill":
                function(pk, cause=cause, actor=actor, reason=reason or "bulk kill")
            else:
                function(pk, actor=actor, reason=reason or f"bulk {name}")
        except (
            actions.ActionError,
            IllegalTransition,
            StaleState,
            ObjectDoesNotExist,
        ) as exc:
            result.skipped[pk] = str(exc)
            continue
        result.done.append(pk)
    return result
