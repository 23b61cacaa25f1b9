"""Flows as Kestra users write them, older spellings included, validate
as written (tests/fixtures/seeds/ holds them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.spec import FlowInvalid, parse_flow

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "seeds"


def fixture_flows() -> list[Path]:
    return sorted(FIXTURES.glob("*.yml"))


@pytest.mark.parametrize("path", fixture_flows(), ids=lambda p: p.stem)
def test_every_fixture_flow_validates(path):
    source = path.read_text()
    try:
        spec = parse_flow(source)
    except FlowInvalid as exc:
        pytest.fail(f"{path.name} does not validate:\n{exc}")
    assert spec.tasks


def test_the_older_spellings_behave_as_kestra_meant_them():
    spec = parse_flow((FIXTURES / "002_snippets.yml").read_text())
    # inputs with ``name:``
    assert [i["id"] for i in spec.inputs] == ["filename", "process_date"]
    # retry type as a class name, with maxDelay capping the delay
    retry = spec.task("risky-task").props.retry
    assert retry.type == "exponential" and retry.attempts_allowed() == 3
    assert retry.delay_before(30).total_seconds() == 60
    # task-level conditions become runIf
    assert (
        spec.task("day-task").props.conditions[0]["expression"]
        == "{{ outputs.check-condition }}"
    )
    # a docker image is accepted, with a warning
    assert any("python:3.9-slim" in w for w in spec.warnings)


def test_task_defaults_fill_properties_and_silence_the_missing_url_warning():
    source = (FIXTURES / "002_data-quality.yml").read_text()
    assert any("no 'url'" in w for w in parse_flow(source).warnings)
    with_defaults = source + (
        "taskDefaults:\n  - type: io.kestra.plugin.jdbc.postgresql\n    values:\n"
        "      url: jdbc:postgresql://db:5432/quality\n      username: checker\n"
    )
    spec = parse_flow(with_defaults)
    assert not spec.warnings
    assert spec.task("check-nulls").props.url == "jdbc:postgresql://db:5432/quality"
    assert spec.task("check-nulls").props.fetch_mode() == "FETCH"


def test_other_condition_types_on_a_task_are_reported_not_ignored_silently():
    spec = parse_flow(
        "id: c\nnamespace: tests.seeds\ntasks:\n  - id: t\n    type: Log\n    message: x\n"
        "    conditions:\n      - type: io.kestra.plugin.core.condition.ExecutionStatus\n"
        "        in: [SUCCESS]\n"
    )
    assert spec.warnings == [
        "tasks[0] (t): conditions[0]: only Expression conditions apply to a "
        "task (as runIf); 'io.kestra.plugin.core.condition.ExecutionStatus' "
        "is ignored"
    ]
