"""Issue 11: one table (executions/lifecycle/rules.py) decides when each verb
applies, and everything that offers or does a verb agrees with it.

For every verb × execution state × role this checks the rule's refusal
against the decisions written out below (independently of ``rules.RULES``),
then that the detail page shows the button exactly when the rule allows it,
that the bulk preview (function and confirmation page) lists the execution as
acting or skipped with the rule's own words, and that the verb itself — and
the bulk apply — succeeds exactly then and otherwise refuses with the same
words. A WARNING execution is not restartable, anywhere.

Nothing runs: a recording dispatcher stands in for Celery, so "succeeds"
means the execution changed as the verb promises and its work was handed on.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.html import escape

from accounts.models import ApiToken, Role
from executions.lifecycle import bulk, rules
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError
from executions.lifecycle.delete import delete_execution
from executions.lifecycle.labels import set_labels
from executions.lifecycle.replay import replay
from executions.lifecycle.restart import restart
from executions.lifecycle.resume import resume
from executions.lifecycle.stop import kill
from executions.models import Cause, Execution, State, TaskRun
from flows.models import save_flow

S = State
NS = "team.rules"
FLOW = f"""
id: gate
namespace: {NS}
tasks:
  - id: wait
    type: Pause
  - id: after
    type: Return
    format: done
triggers:
  - id: nightly
    type: Schedule
    cron: "0 2 * * *"
"""

STATES = [s for s in State.values if s != S.SKIPPED]  # SKIPPED: task runs only
ENDED = {S.SUCCESS, S.WARNING, S.FAILED, S.KILLED, S.CANCELLED}
ACTIVE = set(STATES) - ENDED

# The decisions, written out here rather than read from rules.RULES, so a
# change to the table shows up as a failing test: the role a verb needs, and
# the states it applies to.
EXPECTED: dict[str, tuple[str, set[str]]] = {
    "kill": ("operator", ACTIVE - {S.KILLING}),
    # Not WARNING: the flow ran to its end; replay runs it again.
    "restart": ("operator", {S.FAILED, S.KILLED, S.CANCELLED}),
    "replay": ("operator", ENDED),
    "resume": ("operator", {S.PAUSED}),
    "delete": ("editor", ENDED),
    "labels": ("operator", set(STATES)),
}
RANK = {"none": 0, "viewer": 1, "operator": 2, "editor": 3, "superuser": 99}
ROLES = list(RANK)

# What the detail page renders for each verb that has a button.
BUTTONS = {
    "kill": lambda pk: f'action="/executions/{pk}/kill/"',
    "restart": lambda pk: f'action="/executions/{pk}/restart/"',
    "replay": lambda pk: f'action="/executions/{pk}/replay/"',
    "resume": lambda pk: f'action="/executions/{pk}/resume/"',
    # Delete opens the bulk confirmation for this one execution.
    "delete": lambda pk: (
        'action="/executions/bulk/"',
        f'name="ids" value="{pk}"',
        'name="action" value="delete"',
    ),
}


def may(verb: str, state: str, role: str) -> bool:
    needed, states = EXPECTED[verb]
    return RANK[role] >= RANK[needed] and state in states


def test_every_verb_of_the_rules_is_tabled_here():
    assert set(rules.RULES) == set(EXPECTED)
    assert set(bulk.BULK_ACTIONS) <= set(BUTTONS) <= set(EXPECTED)


@pytest.fixture
def revision(db):
    return save_flow(FLOW, actor="test")[1]


def make_user(role: str):
    users = get_user_model().objects
    if role == "superuser":
        return users.create_superuser("root")
    user = users.create_user(f"u-{role}")
    if role != "none":
        # A role on the parent namespace covers team.rules.
        Role.objects.create(user=user, role=role, namespace="team")
    return user


def make_execution(revision, state: str) -> Execution:
    """An execution of ``gate`` in ``state``, with the task run that state
    implies: PAUSED waits in its Pause task; an ended one ended in it."""
    then = timezone.now() - timedelta(minutes=10)
    execution = Execution.objects.create(
        namespace=NS,
        flow_id="gate",
        flow_revision=revision,
        revision=revision.revision,
        state=state,
        created_at=then,
        started_at=then,
        progress_at=then,
        ended_at=then + timedelta(seconds=5) if state in ENDED else None,
    )
    if state == S.PAUSED or state in ENDED:
        TaskRun.objects.create(
            execution=execution,
            task_id="wait",
            state=state,
            started_at=then,
            ended_at=then + timedelta(seconds=5) if state in ENDED else None,
        )
    return execution


def act(verb: str, pk: int, actor: Actor):
    return {
        "kill": lambda: kill(pk, actor=actor),
        "restart": lambda: restart(pk, actor=actor),
        "replay": lambda: replay(pk, actor=actor),
        "resume": lambda: resume(pk, actor=actor),
        "delete": lambda: delete_execution(pk, actor=actor),
        "labels": lambda: set_labels(pk, {"checked": "yes"}, actor=actor),
    }[verb]()


def assert_done(verb: str, execution: Execution, result, recorder) -> None:
    """The change each verb promises, seen from the database."""
    pk = execution.pk
    if verb == "delete":
        assert not Execution.objects.filter(pk=pk).exists()
        return
    after = Execution.objects.get(pk=pk)
    if verb == "kill":
        assert after.state == S.KILLED
    elif verb == "restart":
        assert (after.state, after.attempt) == (S.RESTARTED, execution.attempt + 1)
        assert pk in recorder.advanced
    elif verb == "replay":
        assert result.original_id == pk and result.state == S.CREATED
        assert result.pk in recorder.advanced
    elif verb == "resume":
        assert after.state == S.RUNNING and pk in recorder.advanced
        assert after.taskruns.get(task_id="wait").state == S.SUCCESS
    elif verb == "labels":
        assert after.labels["checked"] == "yes"


def assert_untouched(execution: Execution, recorder) -> None:
    after = Execution.objects.get(pk=execution.pk)
    assert (after.state, after.attempt, after.labels) == (
        execution.state,
        execution.attempt,
        execution.labels,
    )
    assert not Execution.objects.filter(original=execution).exists()
    assert execution.pk not in recorder.advanced


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("state", STATES)
def test_each_verb_and_bulk_apply_succeed_exactly_when_the_rule_allows(
    state, role, revision, recorder
):
    user = make_user(role)
    actor = Actor(Cause.USER, user.username, user)
    for verb in EXPECTED:
        execution = make_execution(revision, state)
        allowed = may(verb, state, role)
        why = rules.refusal(verb, execution, user)
        assert (why == "") == allowed, f"{verb}: rule says {why!r}"
        needed = EXPECTED[verb][0]
        if RANK[role] < RANK[needed]:
            assert why == f"you need the {needed} role on namespace {NS}", verb
        assert rules.allowed(user, execution)[verb] == allowed, verb
        if allowed:
            assert_done(verb, execution, act(verb, execution.pk, actor), recorder)
        else:
            with pytest.raises(ActionError) as refused:
                act(verb, execution.pk, actor)
            done = rules.RULES[verb].done
            assert str(refused.value) == (
                f"execution {execution.pk} cannot be {done}: {why}"
            ), verb
            assert_untouched(execution, recorder)

    for verb in bulk.BULK_ACTIONS:
        execution = make_execution(revision, state)
        result = bulk.apply(actor, verb, [execution.pk])
        outcome = (result.done, result.skipped)
        if role == "none":
            # A namespace the user has no role on does not exist for them.
            assert outcome == ([], {execution.pk: "not found"}), verb
            assert_untouched(execution, recorder)
        elif may(verb, state, role):
            assert outcome == ([execution.pk], {}), verb
            assert_done(verb, execution, None, recorder)
        else:
            why = rules.refusal(verb, execution, user)
            assert outcome == ([], {execution.pk: why}), verb
            assert_untouched(execution, recorder)


def _block(html: str, pattern: str) -> str | None:
    found = re.search(pattern, html, re.S)
    return found.group(0) if found else None


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("state", STATES)
def test_the_page_and_the_bulk_preview_offer_exactly_what_the_rules_allow(
    state, role, revision, client
):
    user = make_user(role)
    execution = make_execution(revision, state)
    pk = execution.pk
    client.force_login(user)
    page = client.get(f"/executions/{pk}/")

    if role == "none":
        # Namespaces do not leak: no page, no preview row.
        assert page.status_code == 404
        for verb in bulk.BULK_ACTIONS:
            assert bulk.preview_ids(user, verb, [pk]).rows == []
            html = client.post(
                "/executions/bulk/", {"action": verb, "ids": [pk]}
            ).content.decode()
            assert "Nothing to do" in html
            assert 'id="acting"' not in html and 'id="skipped"' not in html
        return

    assert page.status_code == 200
    buttons = _block(page.content.decode(), r'<div class="exec-actions">.*?</div>')
    assert buttons is not None
    for verb, marker in BUTTONS.items():
        markers = marker(pk)
        markers = markers if isinstance(markers, tuple) else (markers,)
        shown = all(m in buttons for m in markers)
        allowed = may(verb, state, role)
        assert shown == allowed, f"{verb} button shown={shown}, rule allows={allowed}"
        assert (rules.refusal(verb, execution, user) == "") == allowed

    for verb in bulk.BULK_ACTIONS:
        allowed = may(verb, state, role)
        why = rules.refusal(verb, execution, user)
        plan = bulk.preview_ids(user, verb, [pk])
        [row] = plan.rows
        assert row.refusal == why
        assert [r.execution.pk for r in plan.acting] == ([pk] if allowed else [])
        assert [r.execution.pk for r in plan.skipped] == ([] if allowed else [pk])

        html = client.post(
            "/executions/bulk/", {"action": verb, "ids": [pk]}
        ).content.decode()
        acting = _block(html, r'<table class="list" id="acting">.*?</table>') or ""
        skipped = _block(html, r'<table class="list" id="skipped">.*?</table>') or ""
        done = rules.RULES[verb].done
        if allowed:
            assert f"will be {done}" in html
            assert f'href="/executions/{pk}/"' in acting
            assert f"<td>{pk}</td>" not in skipped
        else:
            assert f'href="/executions/{pk}/"' not in acting
            skipped_row = _block(skipped, rf"<tr><td>{pk}</td>.*?</tr>")
            assert skipped_row is not None, f"{verb}: {pk} not listed as skipped"
            assert f"<td>{escape(why)}</td>" in skipped_row


ASKING = f"""
id: ticket
namespace: {NS}
tasks:
  - id: approve
    type: Pause
    onResume:
      - id: ticket
        type: INT
        required: true
  - id: after
    type: Return
    format: done
"""


def test_resume_of_a_pause_that_needs_inputs_says_which_instead_of_failing(
    db, client, recorder
):
    """A Pause whose ``onResume`` requires an input: the page's Resume opens
    the form, an empty answer is refused with the input's name on the page,
    the API answers 400 naming it, and the execution stays PAUSED."""
    revision = save_flow(ASKING, actor="test")[1]
    execution = Execution.objects.create(
        namespace=NS,
        flow_id="ticket",
        flow_revision=revision,
        revision=revision.revision,
        state=S.PAUSED,
    )
    TaskRun.objects.create(execution=execution, task_id="approve", state=S.PAUSED)
    user = make_user("operator")
    client.force_login(user)
    page = client.get(f"/executions/{execution.pk}/").content.decode()
    assert f'href="/executions/{execution.pk}/resume/">Resume…</a>' in page
    answer = client.post(f"/executions/{execution.pk}/resume/")
    assert answer.status_code == 400
    html = answer.content.decode()
    assert 'name="input_ticket"' in html
    assert "required INT input is missing</div>" in html
    api = client.post(
        f"/api/executions/{execution.pk}/resume",
        {},
        content_type="application/json",
        headers={"Authorization": f"Bearer {ApiToken.issue(user, 'tests')[1]}"},
    )
    assert api.status_code == 400, api.content
    assert "ticket" in api.content.decode()
    assert "required INT input is missing" in api.content.decode()
    assert Execution.objects.get(pk=execution.pk).state == S.PAUSED
    assert recorder.advanced == []
