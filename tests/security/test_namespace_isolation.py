"""A flow reaches its own namespace subtree, and other namespaces only when they
allow it (allowed namespaces). Replayed as an editor of team.a would, through
the real engine: a Celery worker on PostgreSQL + Redis."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from accounts.models import Role
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import Execution, State, TriggerEvent
from executions.storage import ExecutionFiles, StorageError, path_of, save
from flows.models import NamespaceChange, save_flow
from flows.namespaces import can_reach, reach_warnings, set_allowed_namespaces
from flows.spec import parse_flow
from tests.conftest import wait_for

REFUSAL = (
    "flow team.a.probe may not reach namespace team.b: team.b does not allow "
    "team.a (allowed namespaces"
)

REPORT = """
id: payroll_report
namespace: team.b
inputs:
  - id: password
    type: STRING
    defaults: none
tasks:
  - id: r
    type: Return
    format: "b-result"
outputs:
  - id: result
    type: STRING
    value: "{{ outputs.r.value }}"
"""

# Every task that looks at or starts something in team.b.
PROBE = """
id: probe
namespace: team.a
tasks:
  - id: own
    type: io.kestra.plugin.core.execution.Lookup
  - id: lookup
    type: io.kestra.plugin.core.execution.Lookup
    namespace: team.b
    allowFailure: true
  - id: guess
    type: io.kestra.plugin.core.execution.Lookup
    namespace: team.b
    flowId: payroll_report
    inputs:
      password: hunter2-of-b
    allowFailure: true
  - id: count_flows
    type: io.kestra.plugin.core.execution.Count
    flows:
      - namespace: team.b
        flowId: payroll_report
    allowFailure: true
  - id: count_ns
    type: io.kestra.plugin.core.execution.Count
    namespaces: [team.b]
    allowFailure: true
  - id: sub
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.b
    flowId: payroll_report
    inputs:
      password: from-a
    allowFailure: true
  - id: sub_missing
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.b
    flowId: no_such_flow
    allowFailure: true
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ outputs.own.uri }}"
    namespace: team.b
    flowId: payroll_report
    inputs:
      password: "{{ taskrun.items }}"
    allowFailure: true
"""

LISTENER = """
id: listener
namespace: team.a
tasks:
  - id: got
    type: Return
    format: "{{ trigger.outputs }}"
triggers:
  - id: on_b
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: ExecutionNamespace
        namespace: team.b
        comparison: PREFIX
"""


def _run(revision, **kwargs) -> Execution:
    execution = create_execution(revision, actor=Actor.system("test"), **kwargs)
    wait_for(
        lambda: Execution.objects.get(pk=execution.pk).is_terminal,
        90,
        what=f"execution {execution.pk} to end",
    )
    return Execution.objects.get(pk=execution.pk)


def _errors(execution: Execution) -> dict[str, str]:
    return dict(execution.taskruns.values_list("task_id", "error"))


@pytest.fixture
def team_b(transactional_db):
    _, rev, _ = save_flow(REPORT, actor="test")
    for name in ("audit_export", "salaries"):
        save_flow(REPORT.replace("payroll_report", name), actor="test")
    return rev


def test_every_cross_namespace_task_is_refused_and_names_no_other_flow(
    postgres, redis_broker, start_worker, team_b
):
    start_worker("w1")
    b_run = _run(team_b, inputs={"password": "hunter2-of-b"})
    assert b_run.state == State.SUCCESS
    _, listener, _ = save_flow(LISTENER, actor="test")
    _, probe, _ = save_flow(PROBE, actor="test")
    before_b = set(
        Execution.objects.filter(namespace="team.b").values_list("pk", flat=True)
    )

    execution = _run(probe)

    errors = _errors(execution)
    refused = [
        "lookup",
        "guess",
        "count_flows",
        "count_ns",
        "sub",
        "sub_missing",
        "each",
    ]
    for task_id in refused:
        assert REFUSAL in errors[task_id], (task_id, errors[task_id])
    # A missing flow and an existing one give the same answer; no error names
    # a flow or a value of team.b.
    assert errors["sub"] == errors["sub_missing"]
    for text in errors.values():
        for leaked in ("payroll_report", "audit_export", "salaries", "hunter2"):
            assert leaked not in text
    # Lookup without a namespace sees team.a only.
    own = execution.taskruns.get(task_id="own")
    rows = default_storage.open(path_of(own.outputs["uri"])).read().decode()
    assert rows and "team.b" not in rows
    # Nothing was started in team.b.
    after_b = set(
        Execution.objects.filter(namespace="team.b").values_list("pk", flat=True)
    )
    assert after_b == before_b

    # A team.b end never starts team.a's listener (its outputs stay in team.b).
    second = _run(team_b)
    assert second.state == State.SUCCESS
    assert not TriggerEvent.objects.filter(flow_id="listener").exists()
    assert not Execution.objects.filter(flow_id=listener.flow.flow_id).exists()


def test_an_allowed_namespace_lets_the_same_tasks_through(
    postgres, redis_broker, start_worker, team_b
):
    admin = get_user_model().objects.create_user("bea", password="pw-bea-12345")
    Role.objects.create(user=admin, namespace="team.b", role="admin")
    api = APIClient()
    api.force_authenticate(admin)
    response = api.put(
        "/api/namespaces/team.b/settings",
        {"allowed_namespaces": ["team.a"], "reason": "shared reporting"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["allowed_namespaces"] == ["team.a"]
    change = NamespaceChange.objects.get(namespace="team.b")
    assert (change.actor, change.via, change.reason) == (
        "bea",
        "api",
        "shared reporting",
    )
    assert change.detail == {"before": [], "after": ["team.a"]}

    start_worker("w1")
    _run(team_b, inputs={"password": "hunter2-of-b"})
    _, listener, _ = save_flow(LISTENER, actor="test")
    source = PROBE.replace("    allowFailure: true\n", "").replace(
        "  - id: sub_missing\n"
        "    type: io.kestra.plugin.core.flow.Subflow\n"
        "    namespace: team.b\n"
        "    flowId: no_such_flow\n",
        "",
    )
    _, probe, _ = save_flow(source, actor="test")
    execution = _run(probe)
    assert execution.state == State.SUCCESS, _errors(execution)
    guess = execution.taskruns.get(task_id="guess")
    assert guess.outputs["size"] == 1
    sub = execution.taskruns.get(task_id="sub")
    assert sub.outputs["outputs"] == {"result": "b-result"}
    counted = execution.taskruns.get(task_id="count_ns").outputs["results"]
    assert {r["flowId"] for r in counted} == {
        "payroll_report",
        "audit_export",
        "salaries",
    }
    # team.b's ends (the subflow children among them) now reach the listener.
    wait_for(
        lambda: Execution.objects.filter(flow_id=listener.flow.flow_id).exists(),
        60,
        what="the listener to start",
    )


def test_reach_rules_children_parents_and_wildcards(db):
    set_allowed_namespaces("team.b", ["team.a"], actor="t", via="cli", reason="")
    set_allowed_namespaces("ops", ["*"], actor="t", via="cli", reason="")
    assert can_reach("team.a", "team.a.sub")  # own children
    assert not can_reach("team.a.sub", "team.a")  # not its parent
    assert not can_reach("team.c", "team.b")
    assert can_reach("team.a", "team.b")
    assert can_reach("team.a.etl", "team.b.reports")  # prefix on both sides
    assert not can_reach("team.ab", "team.b")  # a prefix is a whole word
    assert can_reach("anyone", "ops.tools")
    assert can_reach("system", "team.b")  # the system flows namespace


def test_a_file_handed_over_from_an_unreachable_namespace_cannot_be_read(db):
    _, b, _ = save_flow(REPORT, actor="test")
    b_exec = create_execution(b, actor=Actor.system("test"))
    uri = save(f"team/b/payroll_report/executions/{b_exec.pk}/tasks/r/1/pay.csv", b"x")
    _, a, _ = save_flow(PROBE, actor="test")
    a_exec = Execution.objects.create(
        namespace="team.a",
        flow_id="probe",
        revision=1,
        flow_revision=a,
        inputs={"file": uri},
        state=State.CREATED,
    )
    with pytest.raises(StorageError) as info:
        ExecutionFiles(a_exec).read(uri)
    assert REFUSAL in str(info.value)
    set_allowed_namespaces("team.b", ["team.a"], actor="t", via="cli", reason="")
    assert ExecutionFiles(a_exec).read(uri) == b"x"


def test_saving_a_flow_warns_about_targets_it_may_not_reach(db):
    user = get_user_model().objects.create_user("ann", password="pw-ann-12345")
    Role.objects.create(user=user, namespace="team.a", role="editor")
    api = APIClient()
    api.force_authenticate(user)
    response = api.post("/api/flows/validate", {"source": PROBE}, format="json")
    assert response.status_code == 200
    warnings = response.json()["warnings"]
    assert len([w for w in warnings if REFUSAL in w]) == 7
    assert any(w.startswith("tasks[6] (sub_missing)") for w in warnings)
    # Targets written as expressions are checked when the task runs.
    dynamic = PROBE.replace("namespace: team.b", "namespace: \"{{ 'team.b' }}\"")
    assert [w.split(":")[0] for w in reach_warnings(parse_flow(dynamic))] == [
        "tasks[4] (count_ns)"
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"allowed_namespaces": "team.a"}, "must be a list"),
        ({"allowed_namespaces": [1]}, "is not a namespace name"),
        ({"allowed_namespaces": ["bad name"]}, "is not a namespace name"),
        ({"allowed_namespaces": ["x" * 300]}, "is not a namespace name"),
        ({}, "required"),
        (["team.a"], "JSON object"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(db, body, message):
    admin = get_user_model().objects.create_user("bea", password="pw-bea-12345")
    Role.objects.create(user=admin, namespace="team.b", role="admin")
    api = APIClient()
    api.force_authenticate(admin)
    response = api.put("/api/namespaces/team.b/settings", body, format="json")
    assert response.status_code == 400
    assert message in json.dumps(response.json())
    assert not NamespaceChange.objects.exists()


def test_only_an_admin_of_the_namespace_changes_what_may_reach_it(db):
    editor = get_user_model().objects.create_user("ed", password="pw-ed-123456")
    Role.objects.create(user=editor, namespace="team.b", role="editor")
    other = get_user_model().objects.create_user("al", password="pw-al-123456")
    Role.objects.create(user=other, namespace="team.a", role="admin")
    api = APIClient()
    for user in (editor, other):
        api.force_authenticate(user)
        response = api.put(
            "/api/namespaces/team.b/settings",
            {"allowed_namespaces": ["team.a"]},
            format="json",
        )
        assert response.status_code == 403
    api.force_authenticate(editor)
    assert api.get("/api/namespaces/team.b/settings").json() == {
        "namespace": "team.b",
        "allowed_namespaces": [],
    }
    assert not can_reach("team.a", "team.b")


def test_foreachitem_cannot_split_another_namespaces_file(db, run_inprocess):
    _, b, _ = save_flow(REPORT, actor="test")
    b_exec = create_execution(b, actor=Actor.system("test"))
    uri = save(
        f"team/b/payroll_report/executions/{b_exec.pk}/tasks/r/1/rows.ion",
        b'{"salary": 123456}\n',
    )
    save_flow(
        REPORT.replace("team.b", "team.a").replace("payroll_report", "child"),
        actor="test",
    )
    _, a, _ = save_flow(
        f"""
id: probe
namespace: team.a
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{uri}"
    namespace: team.a
    flowId: child
    inputs:
      password: "{{{{ taskrun.items }}}}"
""",
        actor="test",
    )
    execution = run_inprocess(a)
    assert execution.state == State.FAILED
    error = execution.taskruns.get(task_id="each").error
    assert f"items: {uri} does not belong to execution {execution.pk}" in error
    assert not Execution.objects.filter(flow_id="child").exists()
