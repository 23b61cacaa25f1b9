"""Issue 12: files uploaded with inputs that are refused do not stay on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from executions.models import Execution

FLOW = """id: upload
namespace: team.a
inputs:
  - id: data
    type: FILE
  - id: count
    type: INT
  - id: name
    type: STRING
    defaults: abc
    validator: "^[a-z]+$"
tasks:
  - id: t
    type: Log
    message: "{{ inputs.count }}"
"""


def _stored_files() -> list[Path]:
    root = Path(settings.STORAGES["default"]["OPTIONS"]["location"]) / "team.a/upload"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def flow(db, deploy):
    deploy(FLOW)


def test_api_uploads_are_deleted_when_the_inputs_are_refused(flow, olga, client_for):
    client = client_for(olga)
    before = _stored_files()
    response = client.post(
        "/api/executions/team.a/upload",
        {"data": SimpleUploadedFile("a.csv", b"x,y\n"), "count": "not a number"},
    )
    assert response.status_code == 400, response.content[:300]
    assert _stored_files() == before
    assert not Execution.objects.exists()
    # Accepted inputs keep their file.
    response = client.post(
        "/api/executions/team.a/upload",
        {"data": SimpleUploadedFile("a.csv", b"x,y\n"), "count": "3"},
    )
    assert response.status_code == 201, response.content[:300]
    assert [p.read_bytes() for p in set(_stored_files()) - set(before)] == [b"x,y\n"]


def test_page_uploads_are_deleted_when_the_inputs_are_refused(flow, olga, client_for):
    before = _stored_files()
    response = client_for(olga).post(
        "/flows/team.a/upload/execute/",
        {
            "input_data": SimpleUploadedFile("a.csv", b"x"),
            "input_count": "3",
            "input_name": "NOT LOWER CASE",
        },
    )
    assert response.status_code == 400, response.content[:300]
    assert b"does not match the pattern" in response.content
    assert _stored_files() == before
    assert not Execution.objects.exists()
