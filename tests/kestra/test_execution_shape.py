"""Rule: an execution's JSON shows Kestra's task runs (Kestra's
``models.executions.TaskRun`` with ``attempts``, ``TaskRunAttempt``): one
entry per task and value, its tries listed in ``attempts``; the API and
``flows test --json`` share the presenter."""

from django.contrib.auth import get_user_model
from django.test import Client

from accounts import roles
from accounts.models import ApiToken, Role
from executions.models import State

RETRIED = """
id: retried
namespace: company.team
tasks:
  - id: flaky
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ taskrun.attemptsCount < 2 }}"
    retry:
      type: constant
      interval: PT0.1S
      maxAttempt: 3
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["x", "y"]
    tasks:
      - id: body
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
"""


def test_the_api_lists_one_task_run_per_task_with_its_attempts(kestra):
    execution = kestra.run(RETRIED)
    assert execution.state == State.SUCCESS
    user = get_user_model().objects.create_user("viewer1", password="pw-viewer-123")
    Role.objects.create(user=user, role="viewer", namespace="company")
    roles.forget(user)
    _, key = ApiToken.issue(user, "kestra-suite")
    answer = Client().get(
        f"/api/executions/{execution.pk}", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 200, answer.content
    runs = answer.json()["taskRunList"]
    by_task = {(r["taskId"], r["value"]): r for r in runs}
    assert set(by_task) == {
        ("flaky", None),
        ("each", None),
        ("body", "x"),
        ("body", "y"),
    }
    flaky = by_task[("flaky", None)]
    assert [a["state"]["current"] for a in flaky["attempts"]] == [
        "FAILED",
        "FAILED",
        "SUCCESS",
    ]
    assert flaky["state"]["current"] == "SUCCESS"
    assert flaky["id"] == flaky["attempts"][-1]["id"]
    body = by_task[("body", "y")]
    assert body["parentTaskRunId"] == by_task[("each", None)]["id"]
    assert body["outputs"] == {"value": "y"}
    assert len(body["attempts"]) == 1
