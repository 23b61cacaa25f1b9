"""When each verb is allowed: ONE table, read by everything that offers or
does the verb.

The detail page's buttons (``allowed``), the bulk preview and apply
(``refusal``), the REST API and CLI (through the verbs) and the verbs
themselves (``check``) all ask here, so a button is shown exactly when the
click would be accepted, and a bulk preview says exactly what will happen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from accounts import roles
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError
from executions.models import ACTIVE, Execution, State

S = State
ENDED = frozenset({S.SUCCESS, S.WARNING, S.FAILED, S.KILLED, S.CANCELLED})


@dataclass(frozen=True)
class Rule:
    verb: str
    role: str
    # The execution states the verb applies to.
    states: frozenset[str]
    # Past participle, for messages: "3 executions killed".
    done: str
    # Why it does not apply to an execution in ``state`` (not in ``states``).
    why_not: Callable[[str], str]

    def applies(self, state: str) -> bool:
        return state in self.states


def _kill_refusal(state: str) -> str:
    if state == S.KILLING:
        return "it is already being killed"
    return f"it already ended ({state})"


RULES: dict[str, Rule] = {
    "kill": Rule("kill", roles.OPERATOR, ACTIVE - {S.KILLING}, "killed", _kill_refusal),
    # WARNING is not restartable: the flow ran to its end (its failures were
    # allowed), so there is no failed branch to run again, and Kestra's own
    # Restart is offered for failed executions only. Replay runs it again.
    "restart": Rule(
        "restart",
        roles.OPERATOR,
        frozenset({S.FAILED, S.KILLED, S.CANCELLED}),
        "restarted",
        lambda state: (
            f"it is {state}; only FAILED, KILLED or CANCELLED executions can be "
            "restarted (replay runs it again)"
        ),
    ),
    "replay": Rule(
        "replay",
        roles.OPERATOR,
        ENDED,
        "replayed",
        lambda state: f"it is {state}; only ended executions replay (kill it first)",
    ),
    "resume": Rule(
        "resume",
        roles.OPERATOR,
        frozenset({S.PAUSED}),
        "resumed",
        lambda state: f"it is {state}, not PAUSED: there is nothing to resume",
    ),
    "delete": Rule(
        "delete",
        roles.EDITOR,
        ENDED,
        "deleted",
        lambda state: f"it is still {state}; kill it before deleting it",
    ),
    "labels": Rule(
        "labels",
        roles.OPERATOR,
        ENDED | ACTIVE,
        "relabelled",
        lambda state: f"labels cannot change in state {state}",
    ),
}


def rule(verb: str) -> Rule:
    found = RULES.get(verb)
    if found is None:
        raise ActionError(f"unknown action {verb!r}; use one of: {', '.join(RULES)}")
    return found


def refusal(verb: str, execution: Execution, user=None) -> str:
    """Why ``verb`` cannot apply to ``execution`` for ``user`` ('' when it
    can). With no user (CLI, system) only the state is judged."""
    found = rule(verb)
    if user is not None and not roles.has_role(user, execution.namespace, found.role):
        return f"you need the {found.role} role on namespace {execution.namespace}"
    if not found.applies(execution.state):
        return found.why_not(execution.state)
    return ""


def check(verb: str, execution: Execution, actor: Actor) -> None:
    """Raise ActionError unless ``actor`` may ``verb`` ``execution`` now."""
    why = refusal(verb, execution, actor.user)
    if why:
        raise ActionError(
            f"execution {execution.pk} cannot be {rule(verb).done}: {why}"
        )


def allowed(user, execution: Execution) -> dict[str, bool]:
    """Which buttons the execution's page shows ``user``."""
    return {verb: not refusal(verb, execution, user) for verb in RULES}
