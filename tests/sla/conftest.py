"""A real SMTP server (aiosmtpd) and helpers to make executions age."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from executions.lifecycle import machine
from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution


class Inbox:
    """Collects what the SMTP server accepted."""

    def __init__(self) -> None:
        self.messages: list = []
        self.refuse = False

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return "451 4.3.0 try again later"
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        msg.envelope_rcpt = list(envelope.rcpt_tos)
        msg.received_at = timezone.now()
        self.messages.append(msg)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = _free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list:
        return self.inbox.messages


@pytest.fixture
def smtp(settings):
    server = SmtpServer()
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    settings.ORCHESTRA_BASE_URL = "https://orchestra.example.com"
    yield server
    server.stop()


@pytest.fixture
def started(db):
    """Create an execution of a deployed revision and mark it RUNNING as the
    engine would (no task runs: the sweep only looks at the execution)."""
    from executions.models import Cause, State

    def start(revision, **kwargs):
        execution = create_execution(
            revision, start=False, **kwargs, actor=Actor.system("test")
        )
        machine.transition(execution, State.RUNNING, actor=Actor(Cause.EXECUTOR, ""))
        return execution

    return start


@pytest.fixture
def rule(db):
    from sla.models import SlaRule

    def make(**fields):
        from orchestra.lib.durations import parse_duration

        for key in ("slo", "sla"):
            if isinstance(fields.get(key), str):
                fields[key] = parse_duration(fields[key])
        fields.setdefault("name", "rule")
        return SlaRule.objects.create(**fields)

    return make
