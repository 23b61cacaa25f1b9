"""Internal storage: task files, FILE inputs, read() and friends, and the
check that a file belongs to the execution asking for it."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from executions.models import State
from executions.storage import StorageError, open_execution_file, save_input_file
from flows.expressions import ExpressionError, render

FLOW = """
id: files
namespace: tests.storage
inputs:
  - id: upload
    type: FILE
tasks:
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      given.txt: "{{ inputs.upload }}"
    outputFiles: [copy.txt, empty.txt]
    commands:
      - tr a-z A-Z < given.txt > copy.txt
      - touch empty.txt
  - id: show
    type: Log
    message: >-
      {{ read(inputs.upload) | trim }}/{{ read(outputs.make.outputFiles['copy.txt']) | trim }}/
      {{- fileSize(outputs.make.outputFiles['copy.txt']) }}/
      {{- isFileEmpty(outputs.make.outputFiles['empty.txt']) }}/
      {{- fileExists(outputs.make.outputFiles['copy.txt']) }}
"""


def _run(deploy, run_inprocess, content: bytes = b"hello files\n"):
    uri = save_input_file("tests.storage", "files", "../../notes.txt", content)
    return uri, run_inprocess(deploy(FLOW), inputs={"upload": uri})


def test_file_inputs_task_files_and_read_functions_work_together(deploy, run_inprocess):
    uri, execution = _run(deploy, run_inprocess)
    assert uri.startswith("kestra:///tests.storage/files/inputs/") and uri.endswith(
        "/notes.txt"
    )
    assert execution.state == State.SUCCESS, list(
        execution.taskruns.values_list("error", flat=True)
    )
    assert execution.logs.filter(
        task_id="show", message="hello files/HELLO FILES/12/true/true"
    ).exists()
    copy = execution.taskruns.get(task_id="make").outputs["outputFiles"]["copy.txt"]
    assert copy.startswith(
        f"kestra:///tests.storage/files/executions/{execution.pk}/tasks/make/"
    )
    with open_execution_file(execution, copy) as handle:
        assert handle.read() == b"HELLO FILES\n"
    with open_execution_file(execution, uri) as handle:  # its own FILE input
        assert handle.read() == b"hello files\n"


def test_a_file_of_another_execution_cannot_be_opened(deploy, run_inprocess):
    _, first = _run(deploy, run_inprocess)
    _, second = _run(deploy, run_inprocess)
    copy = first.taskruns.get(task_id="make").outputs["outputFiles"]["copy.txt"]
    with pytest.raises(StorageError, match=f"does not belong to execution {second.pk}"):
        open_execution_file(second, copy)
    with pytest.raises(StorageError, match="leaves the storage folder"):
        open_execution_file(
            second,
            f"kestra:///tests.storage/files/executions/{second.pk}/../{first.pk}/x",
        )
    with pytest.raises(StorageError, match="not an internal storage URI"):
        open_execution_file(second, "/etc/passwd")


def test_read_of_a_foreign_file_fails_the_task_with_the_reason(deploy, run_inprocess):
    _, first = _run(deploy, run_inprocess)
    copy = first.taskruns.get(task_id="make").outputs["outputFiles"]["copy.txt"]
    rev = deploy(
        "id: nosy\nnamespace: tests.storage\ntasks:\n  - id: peek\n    type: Log\n"
        f"    message: \"{{{{ read('{copy}') }}}}\"\n"
    )
    execution = run_inprocess(rev)
    assert execution.state == State.FAILED
    error = execution.taskruns.get(task_id="peek").error
    assert "does not belong to execution" in error and "HELLO" not in error


def test_read_outside_a_running_execution_says_so():
    with pytest.raises(ExpressionError, match="reads files of a running execution"):
        render("{{ read('kestra:///x/y') }}", {})


def test_files_go_through_djangos_storage_api(deploy, run_inprocess):
    uri, _ = _run(deploy, run_inprocess)
    assert default_storage.exists(uri.removeprefix("kestra:///"))


def test_templates_cannot_reach_behind_the_file_functions(deploy, run_inprocess):
    for probe in (
        "{{ _files._source }}",
        "{{ _files.save }}",
        "{{ _files._source.save('x', 1, 'y', 'z') }}",
    ):
        rev = deploy(
            "id: probe\nnamespace: tests.storage\ntasks:\n  - id: p\n    type: Log\n"
            f'    message: "{probe}"\n'
        )
        execution = run_inprocess(rev)
        assert execution.state == State.FAILED, probe
    assert not default_storage.exists("tests/storage/probe/executions")
