"""HTTP Request and Download against a real local HTTP server."""

from __future__ import annotations

import json

from executions.models import State
from executions.storage import read_uri
from flows.spec import FlowInvalid, parse_flow
from tests.tasks.conftest import SALES_CSV
from tests.tasks.helpers import flow


def _req(url: str, extra: str = "") -> str:
    return flow(
        f"  - id: req\n    type: io.kestra.plugin.core.http.Request\n    uri: {url}\n{extra}"
    )


def test_a_post_sends_method_headers_and_body_and_returns_code_headers_body(
    deploy, run_inprocess, http_server
):
    rev = deploy(
        _req(
            f"{http_server.url}/echo",
            "    method: POST\n    headers:\n      X-Token: '{{ inputs.token }}'\n"
            "    body: '{\"n\": {{ inputs.n }}}'\n",
        ).replace(
            "tasks:",
            "inputs:\n  - id: token\n    type: STRING\n    defaults: abc\n"
            "  - id: n\n    type: INT\n    defaults: 3\ntasks:",
        )
        + '  - id: use\n    type: Log\n    message: "{{ (outputs.req.body | jsonDecode).token }}"\n'
    )
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS
    out = execution.taskruns.get(task_id="req").outputs
    assert out["code"] == 200
    assert out["headers"]["x-served-by"] == ["fixture"]
    answer = json.loads(out["body"])
    assert answer == {
        "method": "POST",
        "body": '{"n": 3}',
        "content_type": "application/json",
        "token": "abc",
    }
    assert execution.logs.filter(task_id="use", message="abc").exists()


def test_form_data_is_sent_url_encoded(deploy, run_inprocess, http_server):
    rev = deploy(
        _req(
            f"{http_server.url}/echo",
            "    method: PUT\n    formData:\n      name: Ada Lovelace\n      year: 1843\n",
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS
    answer = json.loads(execution.taskruns.get(task_id="req").outputs["body"])
    assert answer["method"] == "PUT"
    assert answer["content_type"] == "application/x-www-form-urlencoded"
    assert answer["body"] == "name=Ada+Lovelace&year=1843"


def test_an_error_status_fails_the_task_unless_allowed(
    deploy, run_inprocess, http_server
):
    failed = run_inprocess(deploy(_req(f"{http_server.url}/status/503")))
    assert failed.state == State.FAILED
    error = failed.taskruns.get(task_id="req").error
    assert "503" in error and "something went wrong upstream" in error

    allowed = run_inprocess(
        deploy(
            _req(
                f"{http_server.url}/status/404",
                "    options:\n      allowFailed: true\n",
            )
        )
    )
    assert allowed.state == State.SUCCESS
    assert allowed.taskruns.get(task_id="req").outputs["code"] == 404

    # allowedResponseCodes is a whitelist: a 200 outside it fails.
    strict = run_inprocess(
        deploy(
            _req(
                f"{http_server.url}/echo",
                "    options:\n      allowedResponseCodes: [201]\n",
            )
        )
    )
    assert strict.state == State.FAILED


def test_a_timeout_fails_with_a_clear_message(deploy, run_inprocess, http_server):
    execution = run_inprocess(
        deploy(_req(f"{http_server.url}/slow", "    options:\n      timeout: PT0.5S\n"))
    )
    assert execution.state == State.FAILED
    assert "no answer before the timeout" in execution.taskruns.get(task_id="req").error


def test_an_unreachable_server_and_a_bad_uri_fail_the_task(deploy, run_inprocess):
    down = run_inprocess(deploy(_req("http://127.0.0.1:9/nothing")))
    assert down.state == State.FAILED
    assert "127.0.0.1:9" in down.taskruns.get(task_id="req").error
    bad = run_inprocess(deploy(_req("ftp://example.org/file")))
    assert (
        "is not an http:// or https:// address" in bad.taskruns.get(task_id="req").error
    )


def test_unknown_client_options_validate_with_a_warning(http_server):
    spec = parse_flow(
        _req(f"{http_server.url}/echo", "    options:\n      proxyAddress: x\n")
    )
    assert any("proxyAddress" in w for w in spec.warnings)
    try:
        parse_flow(_req(f"{http_server.url}/echo", "    methd: POST\n"))
    except FlowInvalid as exc:
        assert "did you mean 'method'" in str(exc)
    else:
        raise AssertionError("a misspelt property must be rejected")


def test_download_stores_the_file_and_outputs_uri_code_length_headers(
    deploy, run_inprocess, http_server
):
    rev = deploy(
        flow(
            f"  - id: dl\n    type: io.kestra.plugin.core.http.Download\n    uri: {http_server.url}/redirect\n"
            f"  - id: report\n    type: io.kestra.plugin.core.http.Download\n    uri: {http_server.url}/report\n"
            '  - id: show\n    type: Log\n    message: "{{ read(outputs.dl.uri) }}"\n'
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS
    out = execution.taskruns.get(task_id="dl").outputs
    assert out["code"] == 200 and out["length"] == len(SALES_CSV)
    assert out["uri"].endswith("/sales.csv")
    assert out["headers"]["content-type"] == ["text/csv"]
    assert read_uri(out["uri"]).decode() == SALES_CSV
    report = execution.taskruns.get(task_id="report").outputs
    assert report["uri"].endswith("/report-2026.pdf")
    assert execution.logs.filter(task_id="show", message=SALES_CSV).exists()


def test_download_of_an_empty_body_or_an_error_fails(
    deploy, run_inprocess, http_server
):
    empty = run_inprocess(
        deploy(
            flow(
                f"  - id: dl\n    type: io.kestra.plugin.core.http.Download\n    uri: {http_server.url}/empty\n"
            )
        )
    )
    assert empty.state == State.FAILED
    assert "empty body" in empty.taskruns.get(task_id="dl").error
    missing = run_inprocess(
        deploy(
            flow(
                f"  - id: dl\n    type: io.kestra.plugin.core.http.Download\n    uri: {http_server.url}/gone\n"
            )
        )
    )
    assert missing.state == State.FAILED
    assert "404" in missing.taskruns.get(task_id="dl").error


def test_form_data_with_a_stored_file_is_sent_as_multipart(
    deploy, run_inprocess, http_server
):
    rev = deploy(
        flow(
            f"  - id: dl\n    type: io.kestra.plugin.core.http.Download\n    uri: {http_server.url}/sales.csv\n"
            f"  - id: req\n    type: io.kestra.plugin.core.http.Request\n    uri: {http_server.url}/echo\n"
            "    method: POST\n    contentType: multipart/form-data\n"
            "    formData:\n      kind: sales\n      file: '{{ outputs.dl.uri }}'\n"
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS, list(
        execution.taskruns.values_list("error", flat=True)
    )
    answer = json.loads(execution.taskruns.get(task_id="req").outputs["body"])
    assert answer["content_type"].startswith("multipart/form-data; boundary=")
    assert 'name="kind"\r\n\r\nsales\r\n' in answer["body"]
    assert 'name="file"; filename="sales.csv"' in answer["body"]
    assert SALES_CSV in answer["body"]


def test_ignored_options_are_also_said_in_the_logs_of_each_run(
    deploy, run_inprocess, http_server
):
    execution = run_inprocess(
        deploy(
            _req(
                f"{http_server.url}/echo",
                "    options:\n      proxyAddress: proxy.internal\n",
            )
        )
    )
    assert execution.state == State.SUCCESS
    assert execution.logs.filter(
        level="WARN", message__contains="proxyAddress"
    ).exists()
