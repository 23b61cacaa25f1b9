"""Issue 12: in the worker, a heavy render stops on kill, on the task's
timeout and at the expression bounds, on a real Celery worker."""

from __future__ import annotations

from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.lifecycle.stop import kill
from executions.models import Execution, State, TaskRun
from tests.conftest import wait_for

# Each iteration rebuilds a million characters: slow, yet under every cap,
# so only a kill, a timeout or the render deadline stops it.
SLOW = (
    "{% for i in range(100000) %}"
    "{% set y = ('x' * 1000000) | replace('x', 'y') %}"
    "{% endfor %}done"
)
FLOW = """id: heavy
namespace: team.a
tasks:
  - id: render
    type: Log
    message: "{message}"
"""


def _run(deploy, message: str, extra: str = "") -> Execution:
    rev = deploy(FLOW.format(message=message) + extra)
    return create_execution(rev, actor=Actor("user", "eve"))


def _finished(execution: Execution, timeout: float = 30) -> Execution:
    wait_for(
        lambda: Execution.objects.get(pk=execution.pk).is_terminal,
        timeout,
        what=f"execution {execution.pk} to end",
    )
    return Execution.objects.get(pk=execution.pk)


def test_kill_and_timeout_interrupt_a_render(deploy, celery_worker):
    execution = _run(deploy, SLOW)
    wait_for(
        lambda: TaskRun.objects.filter(
            execution=execution, state=State.RUNNING
        ).exists(),
        20,
        what="the render to start",
    )
    kill(execution.pk, reason="stop the render", actor=Actor("user", "olga"))
    killed = _finished(execution)
    assert killed.state == State.KILLED
    assert killed.taskruns.get(task_id="render").state == State.KILLED

    timed = _finished(_run(deploy, SLOW, "    timeout: PT1S\n"))
    tr = timed.taskruns.get(task_id="render")
    assert (timed.state, tr.state) == (State.FAILED, State.FAILED)
    assert "timed out after PT1S" in tr.error


def test_bounds_fail_the_task_with_their_reason(deploy, celery_worker):
    cases = {
        "{{ range(3 * 10**7) | length }}": "range() of 30,000,000 numbers",
        "{{ 10 ** (10 ** 7) }}": "10 ** 10000000 is too large",
        SLOW: "took too long to evaluate",
    }
    started = {message: _run(deploy, message.replace('"', '\\"')) for message in cases}
    for message, execution in started.items():
        done = _finished(execution, 40)
        tr = done.taskruns.get(task_id="render")
        assert done.state == State.FAILED, (message, tr.error)
        assert cases[message] in tr.error
