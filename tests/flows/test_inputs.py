import pytest

from flows.spec.inputs import InputError, resolve_inputs

DECLARED = [
    {"id": "n", "type": "INT", "min": 1, "max": 10},
    {"id": "ratio", "type": "FLOAT", "required": False},
    {"id": "flag", "type": "BOOLEAN", "defaults": False},
    {"id": "day", "type": "DATE", "required": False},
    {"id": "at", "type": "DATETIME", "required": False},
    {"id": "sla", "type": "DURATION", "defaults": "PT1H"},
    {"id": "payload", "type": "JSON", "required": False},
    {"id": "env", "type": "SELECT", "values": ["dev", "prod"], "defaults": "dev"},
    {"id": "tags", "type": "ARRAY", "itemType": "INT", "required": False},
    {"id": "code", "type": "STRING", "validator": "[A-Z]{3}", "required": False},
]


def test_it_converts_values_to_their_declared_types():
    values = resolve_inputs(
        DECLARED,
        {
            "n": "3",
            "ratio": "0.5",
            "flag": "true",
            "day": "2026-01-31",
            "at": "2026-01-31T09:30:00+00:00",
            "sla": "45m",
            "payload": '{"a": [1]}',
            "env": "prod",
            "tags": "[1, 2]",
            "code": "ABC",
        },
    )
    assert values == {
        "n": 3,
        "ratio": 0.5,
        "flag": True,
        "day": "2026-01-31",
        "at": "2026-01-31T09:30:00Z",
        "sla": "PT45M",
        "payload": {"a": [1]},
        "env": "prod",
        "tags": [1, 2],
        "code": "ABC",
    }


def test_it_uses_defaults_and_lists_every_bad_input():
    with pytest.raises(InputError) as info:
        resolve_inputs(
            DECLARED,
            {
                "n": "20",
                "env": "qa",
                "tags": "[1, 'x']",
                "code": "abc",
                "unknown": "1",
                "payload": "{bad",
            },
        )
    errors = info.value.errors
    assert errors["n"] == "20 is above the maximum 10"
    assert errors["env"] == "'qa' is not one of: dev, prod"
    assert "not valid JSON" in errors["tags"]
    assert "does not match the pattern" in errors["code"]
    assert errors["unknown"].startswith("this flow has no such input")
    assert "not valid JSON" in errors["payload"]


def test_it_reports_missing_required_inputs():
    with pytest.raises(InputError) as info:
        resolve_inputs(DECLARED, {})
    assert info.value.errors == {"n": "required INT input is missing"}
