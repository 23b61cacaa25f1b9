"""``orchestra flows test`` enforces the flow's own ``sla:`` list as the
engine does for a deployed flow (Kestra's MaxDurationSLA and
ExecutionAssertionSLA, io.kestra.core.models.flows.sla.types)."""

from __future__ import annotations

import json

from tests.cli.conftest import write

SLOW = """id: slow
namespace: tests.cli
sla:
  - id: quick
    type: MAX_DURATION
    behavior: FAIL
    duration: PT1S
tasks:
  - id: work
    type: Sleep
    duration: PT60S
"""

ASSERTED = """id: asserted
namespace: tests.cli
inputs:
  - id: ok
    type: BOOLEAN
    defaults: false
sla:
  - id: must-be-ok
    type: EXECUTION_ASSERTION
    behavior: CANCEL
    assert: "{{ inputs.ok }}"
tasks:
  - id: first
    type: Log
    message: started
  - id: work
    type: Sleep
    duration: PT60S
"""


def test_a_max_duration_fails_the_test_run_within_seconds(cli):
    flow = write(cli.home, "slow.yml", SLOW)
    r = cli("flows", "test", str(flow), timeout=300)
    assert r.code == 1, r
    assert "ended FAILED" in r.out, r
    assert "✔ work SUCCESS" not in r.out  # the 60 s sleep was stopped, not waited for
    # A test run is in-process, in a scratch database: no miss stays behind.
    assert json.loads(cli("sla", "misses", "--json").out) == []


def test_a_false_assertion_cancels_the_run_while_it_runs_without_labels(cli):
    flow = write(cli.home, "asserted.yml", ASSERTED)
    r = cli("flows", "test", str(flow), timeout=300)
    assert r.code == 1, r
    assert "ended CANCELLED" in r.out and "✔ work SUCCESS" not in r.out, r
    # A test run is in-process, in a scratch database: no miss stays behind.
    assert json.loads(cli("sla", "misses", "--json").out) == []


def test_a_true_assertion_lets_the_run_finish(cli):
    flow = write(cli.home, "fine.yml", ASSERTED.replace("PT60S", "PT0.2S"))
    r = cli("flows", "test", str(flow), "--input", "ok=true", timeout=300)
    assert r.code == 0, r
    assert json.loads(cli("sla", "misses", "--json").out) == []
