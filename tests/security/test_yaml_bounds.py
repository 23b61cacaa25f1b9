"""Issue 12: the YAML alias bomb, huge and deep documents are refused unread."""

from __future__ import annotations

import json

import pytest

from executions.models import Execution
from flows.models import Flow
from flows.spec import FlowInvalid, parse_flow

# 470 bytes expanding to 9**9 (387 million) values.
BOMB = """id: bomb
namespace: team.a
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
tasks:
  - id: t
    type: Log
    message: "{{ 1 }}"
"""

MERGE_BOMB = (
    "id: m\nnamespace: team.a\na0: &a0 {k: 1}\n"
    + "".join(
        f"a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]}}\n"
        for i in range(1, 16)
    )
    + "tasks: [{id: t, type: Log, message: x}]\n"
)


def _validate(client, source: str):
    return client.post("/api/flows/validate", source, content_type="text/yaml")


def test_the_alias_bomb_is_a_400_with_a_clear_message(nobody, client_for):
    assert len(BOMB.encode()) < 600
    response = _validate(client_for(nobody), BOMB)
    assert response.status_code == 400, response.content[:300]
    error = response.json()["errors"][0]
    assert "aliases (*name) repeat more than 10,000 values" in error["message"]
    assert error["line"] is not None


def test_a_merge_key_bomb_is_refused(nobody, client_for):
    response = _validate(client_for(nobody), MERGE_BOMB)
    assert response.status_code == 400, response.content[:300]
    assert "merge keys (<<)" in response.json()["errors"][0]["message"]


def test_saving_the_bomb_stores_nothing(eve, client_for):
    response = client_for(eve).post("/api/flows", BOMB, content_type="text/yaml")
    assert response.status_code in (400, 422), response.content[:300]
    assert not Flow.objects.exists()


def test_deep_nesting_is_refused(nobody, client_for):
    deep = "id: d\nnamespace: team.a\nx: " + "[" * 5000 + "]" * 5000 + "\ntasks: []\n"
    response = _validate(client_for(nobody), deep)
    assert response.status_code == 400
    assert "nested more than 64 levels" in response.json()["errors"][0]["message"]


def test_a_document_over_the_size_limit_is_refused(nobody, client_for, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
    big = "id: big\nnamespace: team.a\ndescription: " + "x" * (1024 * 1024 + 10)
    response = _validate(client_for(nobody), big + "\ntasks: []\n")
    assert response.status_code == 400
    assert "1000000 characters" in response.json()["detail"]
    # Whoever reads a flow file (the CLI's deploy too) meets the same bound.
    with pytest.raises(FlowInvalid, match="larger than 128 KiB") as caught:
        parse_flow(big + "\ntasks: []\n")
    assert caught.value.refused


def test_a_body_over_the_request_cap_is_413(nobody, client_for):
    big = "x" * (3 * 1024 * 1024)
    response = _validate(client_for(nobody), big)
    assert response.status_code == 413
    assert "larger than the limit of 2621440 bytes" in response.json()["detail"]


@pytest.mark.parametrize("depth", [100, 5000])
def test_deep_json_bodies_are_400(depth, nobody, client_for):
    body = "[" * depth + "]" * depth
    response = client_for(nobody).post(
        "/api/executions/cleanup", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert "nested" in response.json()["detail"]


YAML_INPUT_FLOW = """id: yaml-input
namespace: team.a
inputs:
  - id: doc
    type: YAML
tasks:
  - id: t
    type: Log
    message: hi
"""


def test_a_yaml_input_bomb_is_refused_and_starts_nothing(olga, client_for, deploy):
    deploy(YAML_INPUT_FLOW)
    bomb = "\n".join(BOMB.splitlines()[2:11])
    response = client_for(olga).post(
        "/api/executions/team.a/yaml-input",
        json.dumps({"inputs": {"doc": bomb}}),
        content_type="application/json",
    )
    assert response.status_code == 400, response.content[:300]
    assert "aliases" in response.json()["detail"]
    assert not Execution.objects.exists()
