"""Flow validation: every bad input names its place and the fix."""

import pytest

from flows.spec import FlowInvalid, parse_flow


def errors_of(source: str):
    with pytest.raises(FlowInvalid) as info:
        parse_flow(source)
    return info.value.errors


def test_it_reports_yaml_syntax_errors_with_line_and_column():
    [error] = errors_of("id: x\nnamespace: a\ntasks:\n  - id: a\n   type: Log\n")
    assert (error.line, error.column) == (5, 4)
    assert "invalid YAML" in error.message


def test_it_lists_known_types_and_suggests_the_closest_for_an_unknown_type():
    [error] = errors_of(
        "id: x\nnamespace: a\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Logg\n"
        "    message: hi\n"
    )
    assert error.path == "tasks[0].type"
    assert (error.line, error.column) == (5, 5)
    assert "did you mean 'io.kestra.plugin.core.log.Log'" in error.message
    assert "Known types:" in error.message and "ForEach" in error.message


def test_it_suggests_the_closest_property_in_nested_models():
    errors = errors_of(
        "id: x\nnamespace: a\ntasks:\n  - id: a\n    type: Log\n    message: hi\n"
        "    retry:\n      type: constant\n      maxAttemp: 3\n"
    )
    [error] = errors
    assert error.path == "tasks[0].retry.maxAttemp"
    assert error.line == 9
    assert "did you mean 'maxAttempt'" in error.message


def test_it_reports_every_error_at_once_in_file_order():
    errors = errors_of(
        "id: x\nnamespace: a\ntasks:\n"
        "  - id: a\n    type: Sleep\n    duration: 5 parsecs\n"
        "  - id: b\n    type: Return\n    format: '{{ inputs.x | }}'\n"
        "triggers:\n  - id: t\n    type: Schedule\n    cron: '61 * * * *'\n"
    )
    assert [e.path for e in errors] == [
        "tasks[0].duration",
        "tasks[1].format",
        "triggers[0].cron",
    ]
    assert "is not a duration" in errors[0].message
    assert "invalid expression" in errors[1].message
    assert "invalid cron" in errors[2].message
    assert [e.line for e in errors] == [6, 9, 13]


def test_it_rejects_duplicate_task_ids_naming_both_places():
    errors = errors_of(
        "id: x\nnamespace: a\ntasks:\n  - id: a\n    type: Log\n    message: hi\n"
        "  - id: s\n    type: Sequential\n    tasks:\n      - id: a\n        type: Log\n"
        "        message: again\n"
    )
    assert errors[0].path == "tasks[1].tasks[0].id"
    assert "duplicate task id 'a' (also at tasks[0])" in errors[0].message


def test_it_requires_id_namespace_and_tasks():
    messages = [e.message for e in errors_of("description: nothing\n")]
    assert "missing required property 'id'" in messages
    assert "missing required property 'namespace'" in messages
    assert any("at least one task" in m for m in messages)


def test_it_accepts_kestra_old_and_short_type_names_and_yaml_12_booleans():
    spec = parse_flow(
        "id: x\nnamespace: a.b\ntasks:\n"
        "  - id: yes\n    type: io.kestra.core.tasks.log.Log\n    message: hi\n"
        "  - id: no\n    type: Return\n    format: x\n"
        "  - id: each\n    type: io.kestra.core.tasks.flows.EachParallel\n    value: [1, 2]\n"
        "    tasks:\n      - id: inner\n        type: io.kestra.plugin.core.debug.Return\n"
        "        format: '{{ taskrun.value }}'\n"
    )
    assert [n.id for n in spec.all_tasks()] == ["yes", "no", "each", "inner"]
    assert spec.task("yes").type.name == "io.kestra.plugin.core.log.Log"


def test_it_applies_task_defaults_before_validation():
    spec = parse_flow(
        "id: x\nnamespace: a\ntasks:\n  - id: a\n    type: Log\n"
        "taskDefaults:\n  - type: io.kestra.plugin.core.log.Log\n    values:\n"
        "      message: from defaults\n      level: WARN\n"
    )
    assert spec.task("a").props.message == "from defaults"
    assert spec.task("a").props.level == "WARN"


def test_it_checks_input_declarations():
    errors = errors_of(
        "id: x\nnamespace: a\ninputs:\n  - id: n\n    type: INTEGR\n"
        "  - id: m\n    type: INT\n    defaults: abc\n"
        "tasks:\n  - id: a\n    type: Log\n    message: hi\n"
    )
    assert "unknown input type 'INTEGR'; did you mean 'INT'?" in errors[0].message
    assert errors[1].path == "inputs[1].defaults"
    assert "expected an integer" in errors[1].message


def test_it_accepts_hyphenated_task_ids_in_expressions():
    spec = parse_flow(
        "id: x\nnamespace: a\ntasks:\n  - id: set-vars\n    type: Return\n    format: v\n"
        "  - id: use\n    type: Log\n    message: '{{ outputs.set-vars.value }}'\n"
    )
    assert spec.task("use") is not None


def test_flow_labels_read_as_a_mapping_or_a_list_and_name_a_bad_item():
    tasks = "tasks:\n  - id: a\n    type: Log\n    message: hi\n"
    spec = parse_flow(
        "id: x\nnamespace: a\nlabels:\n  - key: team\n    value: data\n"
        "  - env:prod\n" + tasks
    )
    assert spec.labels == {"team": "data", "env": "prod"}
    errors = errors_of(
        "id: x\nnamespace: a\nlabels:\n  - key: team\n    value: data\n  - 3\n" + tasks
    )
    assert [(e.path, e.message) for e in errors] == [
        ("labels[1]", "a label in a list needs 'key' and 'value'")
    ]
