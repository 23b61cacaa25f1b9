import pytest

from flows.expressions import ExpressionError, evaluate, java_to_strftime, render

CTX = {
    "outputs": {"set-vars": {"value": "x"}, "list": {"values": [1, 2]}},
    "inputs": {"n": 3, "name": ""},
    "execution": {"startDate": "2026-01-02T03:04:05Z"},
}


def test_it_reads_outputs_of_hyphenated_task_ids():
    assert render("{{ outputs.set-vars.value }}", CTX) == "x"
    assert render("{{ 'a-b' }} {{ inputs.n - 1 }}", CTX) == "a-b 2"


def test_it_formats_dates_with_java_patterns():
    assert java_to_strftime("yyyy-MM-dd'T'HH:mm") == "%Y-%m-%dT%H:%M"
    assert (
        render("{{ execution.startDate | date('yyyy-MM-dd HH:mm:ss') }}", CTX)
        == "2026-01-02 03:04:05"
    )
    assert render("{{ execution.startDate | date('HH') | int > 2 }}", CTX) == "true"
    assert (
        render(
            "{{ execution.startDate | dateAdd(1, 'DAYS') | date('yyyy-MM-dd') }}", CTX
        )
        == "2026-01-03"
    )


def test_default_replaces_null_and_empty_as_in_pebble():
    assert render("{{ inputs.name | default('anon') }}", CTX) == "anon"
    assert render("{{ inputs.missing | default('d') }}", CTX) == "d"


def test_null_coalescing_as_in_pebble():
    ctx = {**CTX, "inputs": {**CTX["inputs"], "none": None}}
    assert render("{{ inputs.none ?? 'fallback' }}", ctx) == "fallback"
    assert render("{{ inputs.n ?? 0 }}", ctx) == "3"
    # However deep the missing part is, and chained.
    assert render("{{ outputs.nope.value ?? inputs.gone ?? 'last' }}", ctx) == "last"
    assert render("{{ outputs.set-vars.value ?? 'n' }}", ctx) == "x"
    assert evaluate("{{ inputs.none ?? outputs.list.values }}", ctx) == [1, 2]
    assert render("{% if inputs.flag ?? true %}on{% endif %}", ctx) == "on"
    assert render("{{ 'a ?? b' }}", ctx) == "a ?? b"
    # The fallback itself must exist, and elsewhere a missing name still fails.
    for template in ("{{ inputs.none ?? inputs.gone }}", "{{ a ?? 1 }}{{ b.c }}"):
        with pytest.raises(ExpressionError) as info:
            render(template, ctx)
        assert "is not defined" in info.value.message


def test_evaluate_keeps_native_values():
    assert evaluate("{{ outputs.list.values }}", CTX) == [1, 2]
    assert evaluate("{{ inputs.n > 2 }}", CTX) is True


def test_unknown_names_fail_with_the_name():
    with pytest.raises(ExpressionError) as info:
        render("{{ inputs.nope }}", CTX)
    assert "'nope' is not defined" in info.value.message


def test_the_sandbox_blocks_python_internals():
    with pytest.raises(ExpressionError):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}", CTX)
