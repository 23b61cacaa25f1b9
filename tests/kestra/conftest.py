"""The Kestra conformance suite: Kestra flows, as written in Kestra's docs,
run by a real Celery worker on PostgreSQL + Redis; each test names the
Kestra class that defines the rule it checks."""

from __future__ import annotations

import pytest

from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.models import Execution
from tests.conftest import wait_for


class Kestra:
    """Deploys flows and runs them to their end on the real worker."""

    def __init__(self, deploy):
        self.deploy = deploy

    def start(self, source: str, **kwargs) -> Execution:
        return create_execution(
            self.deploy(source), **kwargs, actor=Actor.system("kestra-suite")
        )

    def wait(self, execution: Execution, timeout: float = 60) -> Execution:
        wait_for(
            lambda: Execution.objects.get(pk=execution.pk).is_terminal,
            timeout,
            what=f"execution {execution.pk} to end",
        )
        execution.refresh_from_db()
        return execution

    def run(self, source: str, **kwargs) -> Execution:
        return self.wait(self.start(source, **kwargs))

    def run_all(self, sources: dict[str, str]) -> dict[str, Execution]:
        """Start every flow at once (one worker serves them all), then wait."""
        started = {name: self.start(src) for name, src in sources.items()}
        return {name: self.wait(ex) for name, ex in started.items()}


def runs(execution: Execution) -> dict[tuple, str]:
    """Task runs as Kestra lists them: (task id, value) → state of the last attempt."""
    out = {}
    for tr in execution.taskruns.order_by("attempt", "pk"):
        out[(tr.task_id, tr.value)] = tr.state
    return out


def ran(execution: Execution) -> list[str]:
    """Ids of the task runs in the order they were created."""
    return list(execution.taskruns.order_by("pk").values_list("task_id", flat=True))


@pytest.fixture
def kestra(deploy, celery_worker, postgres, redis_broker) -> Kestra:
    return Kestra(deploy)
