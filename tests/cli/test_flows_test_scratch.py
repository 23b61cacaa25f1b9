"""``orchestra flows test`` runs "in-process, no server" on a throwaway
database: its execution never shows in the installation's lists, overview
counts or recent failures, and the deployed flows are still there to call."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Role
from executions.models import Execution, LogEntry, StateChange, TaskRun, Worker
from orchestra.cli import main

CHILD = """id: child
namespace: company.lab
tasks:
  - id: answer
    type: Return
    format: "from the deployed child"
"""

FAILING = """id: trial
namespace: company.lab
tasks:
  - id: call
    type: Subflow
    namespace: company.lab
    flowId: child
    wait: true
  - id: boom
    type: Fail
    errorMessage: "broken on purpose"
"""


@pytest.mark.django_db(transaction=True)
def test_a_test_run_leaves_the_live_data_alone(tmp_path, capsys, client, deploy):
    deploy(CHILD)
    user = get_user_model().objects.create_user("olga", password="pw")
    Role.objects.create(user=user, role="operator", namespace="company")
    flow = tmp_path / "trial.yml"
    flow.write_text(FAILING)

    code = main(["flows", "test", str(flow), "--json"])
    out, err = capsys.readouterr()
    assert code == 1, err
    ran = json.loads(out)
    assert ran["state"] == "FAILED"
    states = {t["taskId"]: t["state"] for t in ran["taskRuns"]}
    assert states["call"] == "SUCCESS" and states["boom"] == "FAILED"

    # The installation's data: nothing of the run, the deployed flow intact.
    for model in (Execution, TaskRun, LogEntry, StateChange, Worker):
        assert model.objects.count() == 0, model.__name__
    client.force_login(user)
    listed = client.get("/executions/?window=all")
    assert listed.status_code == 200 and list(listed.context["page"].rows) == []
    overview = client.get("/")
    assert overview.context["total"] == 0 and overview.context["failures"] == []
    assert client.get("/flows/company.lab/child/").status_code == 200
