"""``notifications.mail.MailSend``: an email through Django's email backend.

Without ``host`` the project's backend is used (``EMAIL_HOST`` and friends in
the environment); with ``host`` the task talks to that SMTP server itself.
Attachments come from internal storage.
"""

from __future__ import annotations

import mimetypes
import re
import smtplib
from datetime import timedelta
from email import encoders
from email.mime.base import MIMEBase
from typing import Any

from pydantic import Field

from flows.tasks.context import RunContext, TaskFailed
from flows.tasks.fields import BaseTask, DDuration, DInt, DList, DStr
from flows.tasks.registry import register

TRANSPORTS = ("SMTP", "SMTPS", "SMTP_TLS", "SMTP_OAUTH2")
ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class MailSendTask(BaseTask):
    from_: DStr | None = Field(default=None, alias="from")  # ``from`` is a keyword
    to: DStr | DList
    cc: DStr | DList | None = None
    bcc: DStr | DList | None = None
    replyTo: DStr | None = None
    subject: DStr | None = None
    htmlTextContent: DStr | None = None
    plainTextContent: DStr | None = None
    attachments: DList | None = None
    embeddedImages: DList | None = None
    host: DStr | None = None
    port: DInt | None = None
    username: DStr | None = None
    password: DStr | None = None
    transportStrategy: DStr = "SMTPS"
    sessionTimeout: DInt | DDuration | None = None

    def validation_warnings(self) -> list[str]:
        notes = super().validation_warnings()
        if self.embeddedImages:
            notes.append("embeddedImages are not supported here and are ignored")
        return notes


def addresses(value: Any, what: str) -> list[str]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        bare = text[text.find("<") + 1 : text.rfind(">")] if "<" in text else text
        if not ADDRESS.match(bare.strip()):
            raise TaskFailed(f"{what}: {text!r} is not an email address")
        out.append(text)
    return out


def _connection(props: MailSendTask):
    from django.core.mail import get_connection

    if not props.host:
        return get_connection()
    transport = str(props.transportStrategy or "SMTPS").upper()
    if transport not in TRANSPORTS:
        raise TaskFailed(f"transportStrategy must be one of {', '.join(TRANSPORTS)}")
    if transport == "SMTP_OAUTH2":
        raise TaskFailed("transportStrategy SMTP_OAUTH2 is not supported here")
    timeout = props.sessionTimeout
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, int):
        seconds = timeout / 1000  # Kestra gives sessionTimeout in milliseconds
    else:
        seconds = 30
    return get_connection(
        "django.core.mail.backends.smtp.EmailBackend",
        host=str(props.host),
        port=int(props.port or (465 if transport == "SMTPS" else 25)),
        username=str(props.username or ""),
        password=str(props.password or ""),
        use_ssl=transport == "SMTPS",
        use_tls=transport == "SMTP_TLS",
        timeout=seconds,
        fail_silently=False,
    )


def _attachment(name: str, data: bytes, kind: str) -> MIMEBase:
    """Base64 for every type, so files arrive byte for byte (text parts would
    otherwise have their line endings rewritten)."""
    main, _, sub = kind.partition("/")
    part = MIMEBase(main or "application", sub or "octet-stream")
    part.set_payload(data)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename=name)
    return part


def run_mail_send(ctx: RunContext, props: MailSendTask) -> dict[str, Any]:
    from django.conf import settings
    from django.core.mail import EmailMultiAlternatives

    to = addresses(props.to, "to")
    cc = addresses(props.cc, "cc")
    bcc = addresses(props.bcc, "bcc")
    if not to:
        raise TaskFailed("to: at least one recipient is needed")
    sender = str(props.from_ or settings.DEFAULT_FROM_EMAIL)
    addresses(sender, "from")
    if props.plainTextContent is None and props.htmlTextContent is None:
        raise TaskFailed("give plainTextContent, htmlTextContent or both")
    text = str(props.plainTextContent) if props.plainTextContent is not None else ""
    message = EmailMultiAlternatives(
        subject=str(props.subject or ""),
        body=text,
        from_email=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=addresses(props.replyTo, "replyTo") or None,
        connection=_connection(props),
    )
    if props.htmlTextContent is not None:
        if props.plainTextContent is None:
            message.body = str(props.htmlTextContent)
            message.content_subtype = "html"
        else:
            message.attach_alternative(str(props.htmlTextContent), "text/html")
    for index, item in enumerate(props.attachments or []):
        if not isinstance(item, dict) or not item.get("uri"):
            raise TaskFailed(
                f"attachments[{index}] needs a 'uri' (kestra://...) and a 'name'"
            )
        uri = str(item["uri"])
        name = str(item.get("name") or uri.rstrip("/").rsplit("/", 1)[-1])
        try:
            data = ctx.read_file(uri)
        except ValueError as exc:
            raise TaskFailed(f"attachments[{index}]: {exc}") from None
        kind = (
            item.get("contentType")
            or mimetypes.guess_type(name)[0]
            or "application/octet-stream"
        )
        message.attach(_attachment(name, data, str(kind)))
    ctx.check_alive()  # the lease, right before the side effect
    try:
        message.send(fail_silently=False)
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise TaskFailed(
            f"the mail server refused or could not be reached: {exc}"
        ) from None
    ctx.log("INFO", f"mail '{message.subject}' sent to {', '.join(to + cc + bcc)}")
    return {}


register(
    "io.kestra.plugin.notifications.mail.MailSend",
    MailSendTask,
    run=run_mail_send,
    aliases=("io.kestra.plugin.notifications.email.MailSend",),
    summary="Send an email (to, cc, subject, html/text body, attachments from storage)",
)
