"""Global secrets: secret('NAME') from SECRET_NAME (base64) when the operator
marks NAME global, masked in logs, outputs and errors."""

from __future__ import annotations

import base64

import pytest

from flows.expressions import ExpressionError, render


@pytest.fixture(autouse=True)
def _global(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_GLOBAL_SECRETS", "*")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_reads_the_base64_environment_variable(monkeypatch):
    monkeypatch.setenv("SECRET_DB_PASSWORD", b64("pä$$word"))
    assert render("{{ secret('DB_PASSWORD') }}", {}) == "pä$$word"


@pytest.mark.parametrize(
    ("name", "env", "message"),
    [
        (
            "MISSING",
            None,
            "secret('MISSING') is not set: outside a flow's execution only global "
            "secrets are readable (SECRET_MISSING listed in ORCHESTRA_GLOBAL_SECRETS)",
        ),
        ("PLAIN", "not base64!", "SECRET_PLAIN is not base64"),
        ("KEY", b64("x"), "secret('KEY') is reserved"),
        ("bad name", None, "secret name 'bad name' is not valid"),
    ],
)
def test_secret_errors_name_the_variable(monkeypatch, name, env, message):
    if env is not None:
        monkeypatch.setenv(f"SECRET_{name}", env)
    with pytest.raises(ExpressionError) as info:
        render(f"{{{{ secret('{name}') }}}}", {})
    assert message in info.value.message


def test_secrets_are_masked_in_logs_outputs_and_errors(
    monkeypatch, deploy, run_inprocess
):
    monkeypatch.setenv("SECRET_API_TOKEN", b64("tok-123456"))
    rev = deploy("""
id: masked
namespace: tests.secrets
tasks:
  - id: log
    type: Log
    message: "calling with {{ secret('API_TOKEN') }} now"
  - id: ret
    type: Return
    format: "Bearer {{ secret('API_TOKEN') }}"
  - id: fail
    type: Fail
    allowFailure: true
    errorMessage: "rejected tok-123456"
outputs:
  - id: header
    type: STRING
    value: "{{ outputs.ret.value }}"
""")
    execution = run_inprocess(rev)
    messages = list(execution.logs.values_list("message", flat=True))
    assert "calling with ****** now" in messages
    assert not any("tok-123456" in m for m in messages)
    assert execution.taskruns.get(task_id="ret").outputs == {"value": "Bearer ******"}
    assert execution.taskruns.get(task_id="fail").error == "rejected ******"
    assert execution.outputs == {"header": "Bearer ******"}


def test_a_script_printing_a_secret_has_it_masked_in_its_streamed_logs(
    monkeypatch, deploy, run_inprocess
):
    monkeypatch.setenv("SECRET_API_TOKEN", b64("tok-987654"))
    rev = deploy("""
id: script_secret
namespace: tests.secrets
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    env:
      TOKEN: "{{ secret('API_TOKEN') }}"
    commands:
      - echo "token is $TOKEN"
      - 'echo "::{\\"outputs\\": {\\"token\\": \\"$TOKEN\\"}}::"'
""")
    execution = run_inprocess(rev)
    assert execution.state == "SUCCESS", execution.error
    messages = " ".join(execution.logs.values_list("message", flat=True))
    assert "token is ******" in messages and "tok-987654" not in messages
    assert execution.taskruns.get().outputs["vars"] == {"token": "******"}
