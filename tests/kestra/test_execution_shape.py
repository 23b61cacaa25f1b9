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


RETRY_RULES = """
id: retry_rules
namespace: company.team
tasks:
  - id: warned
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ taskrun.attemptsCount < 1 }}"
    retry:
      type: constant
      interval: PT0.1S
      maxAttempt: 3
      warningOnRetry: true
  - id: until_time
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ taskrun.attemptsCount < 4 }}"
    retry:
      type: constant
      interval: PT0.1S
      maxDuration: PT1M
  - id: data
    type: io.kestra.plugin.core.output.OutputValues
    values:
      a: "1"
outputs:
  - id: as_text
    type: STRING
    value: "{{ outputs.data.values }}"
"""


def test_retry_rules_and_a_string_output_built_from_a_map(kestra):
    """Kestra's ``retry`` (``AbstractRetry.warningOnRetry``; ``maxDuration``
    alone retries until it is spent) and ``FlowInputOutput.typedOutputs``."""
    execution = kestra.run(RETRY_RULES)
    tries = {}
    for tr in execution.taskruns.order_by("attempt"):
        tries.setdefault(tr.task_id, []).append(tr.state)
    assert tries["warned"] == ["FAILED", "WARNING"]
    assert tries["until_time"] == ["FAILED"] * 4 + ["SUCCESS"]
    assert execution.state == State.WARNING
    assert execution.outputs == {"as_text": '{"a":"1"}'}
