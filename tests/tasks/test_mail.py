"""MailSend through Django's email backend to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from django.test import override_settings

from executions.models import State
from tests.tasks.helpers import flow


def _mail(extra: str) -> str:
    return flow(
        "  - id: file\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    outputFiles: [report.csv]\n    commands: ['printf \"a,b\\n1,2\\n\" > report.csv']\n"
        "  - id: mail\n    type: io.kestra.plugin.notifications.mail.MailSend\n" + extra
    )


def _smtp_settings(smtp_server):
    return override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=smtp_server.port,
        EMAIL_USE_TLS=False,
        EMAIL_USE_SSL=False,
    )


def test_mail_send_delivers_text_html_cc_and_an_attachment(
    deploy, run_inprocess, smtp_server
):
    rev = deploy(
        _mail(
            "    from: orchestra@example.org\n"
            "    to: ada@example.org, bob@example.org\n    cc: [carol@example.org]\n"
            "    subject: 'Report {{ execution.id }}'\n"
            "    plainTextContent: 'rows: 1'\n"
            "    htmlTextContent: '<p>rows: <b>1</b></p>'\n"
            "    attachments:\n      - name: report.csv\n"
            "        uri: \"{{ outputs.file.outputFiles['report.csv'] }}\"\n"
        )
    )
    with _smtp_settings(smtp_server):
        execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS, list(
        execution.taskruns.values_list("error", flat=True)
    )
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message["Subject"] == f"Report {execution.pk}"
    assert message["From"] == "orchestra@example.org"
    assert message["To"] == "ada@example.org, bob@example.org"
    assert message["Cc"] == "carol@example.org"
    parts = {part.get_content_type(): part for part in message.walk()}
    assert parts["text/plain"].get_payload(decode=True).decode() == "rows: 1"
    assert (
        parts["text/html"].get_payload(decode=True).decode() == "<p>rows: <b>1</b></p>"
    )
    attachment = parts["text/csv"]
    assert attachment.get_filename() == "report.csv"
    assert attachment.get_payload(decode=True) == b"a,b\n1,2\n"


def test_a_task_level_smtp_host_is_used_directly(deploy, run_inprocess, smtp_server):
    rev = deploy(
        _mail(
            f"    host: 127.0.0.1\n    port: {smtp_server.port}\n    transportStrategy: SMTP\n"
            "    to: ops@example.org\n    subject: direct\n    htmlTextContent: '<i>only html</i>'\n"
        )
    )
    execution = run_inprocess(
        rev
    )  # default settings: the file backend, not this server
    assert execution.state == State.SUCCESS, list(
        execution.taskruns.values_list("error", flat=True)
    )
    [message] = smtp_server.messages
    assert message["Subject"] == "direct"
    assert message.get_content_type() == "text/html"


def test_bad_addresses_and_an_unreachable_server_fail_clearly(deploy, run_inprocess):
    bad = run_inprocess(
        deploy(_mail("    to: not-an-address\n    plainTextContent: x\n"))
    )
    assert bad.state == State.FAILED
    assert (
        "'not-an-address' is not an email address"
        in bad.taskruns.get(task_id="mail").error
    )
    down = run_inprocess(
        deploy(
            _mail(
                "    host: 127.0.0.1\n    port: 9\n    transportStrategy: SMTP\n"
                "    to: a@example.org\n    plainTextContent: x\n"
            )
        )
    )
    assert down.state == State.FAILED
    assert "could not be reached" in down.taskruns.get(task_id="mail").error
