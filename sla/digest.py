"""Batched SLA emails through an outbox (DESIGN §4).

1. ``build_digests``: misses not yet in an email are grouped by recipient
   set; each group becomes ONE Digest row (the rendered email) and its misses
   are claimed for it with a conditional update, in one transaction.
2. ``send_pending``: each PENDING digest is claimed (PENDING → SENDING) and
   sent; it becomes SENT only after the SMTP server accepted it. A refused or
   unreachable server puts it back to PENDING for the next sweep.

A crash between the server's "250 OK" and our SENT update leaves the digest
SENDING; after ``ORCHESTRA_SLA_SENDING_LEASE_SECONDS`` it is sent again with
the same Message-ID, so mail systems that de-duplicate on it show it once.

Damping: once a rule has been alerted at a level, its next misses at that
level wait ``ORCHESTRA_SLA_REMINDER_MINUTES`` and then go out together as a
reminder, so a rule that keeps missing sends one email per quiet period.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from sla.models import Digest, DigestState, Kind, Level, SlaMiss, SlaRule

log = logging.getLogger("orchestra.sla")

MAX_MISSES_PER_EMAIL = 1000
QUIET_FIELD = {Level.SLO: "slo_quiet_until", Level.SLA: "sla_quiet_until"}


def reminder_period() -> timedelta:
    return timedelta(minutes=settings.ORCHESTRA_SLA_REMINDER_MINUTES)


def sending_lease() -> timedelta:
    return timedelta(seconds=settings.ORCHESTRA_SLA_SENDING_LEASE_SECONDS)


def unsent_misses(now: datetime):
    """Misses waiting for an email, without those of damped rules."""
    return (
        SlaMiss.objects.filter(digest__isnull=True)
        .exclude(recipients="")
        .exclude(level=Level.SLO, rule__slo_quiet_until__gt=now)
        .exclude(level=Level.SLA, rule__sla_quiet_until__gt=now)
        .select_related("rule", "execution")
        .order_by("detected_at", "id")
    )


def _row(miss: SlaMiss, base_url: str) -> dict:
    return {
        "miss": miss,
        "flow": f"{miss.namespace}.{miss.flow_id}" if miss.flow_id else f"{miss.namespace}.*",
        "url": f"{base_url}/executions/{miss.execution_id}/" if miss.execution_id else "",
        "expected": miss.kind == Kind.EXPECTED,
    }


def render_digest(misses: list[SlaMiss], recipients: str, now: datetime) -> dict[str, str]:
    """Subject, text and HTML of the email for these misses (also the preview)."""
    base_url = settings.ORCHESTRA_BASE_URL.rstrip("/")
    breaches = sum(1 for m in misses if m.level == Level.SLA)
    warnings = len(misses) - breaches
    reminder_rules = sorted({
        m.rule.name for m in misses
        if m.rule and getattr(m.rule, QUIET_FIELD[m.level]) is not None
    })
    namespaces = sorted({m.namespace for m in misses})
    parts = []
    if breaches:
        parts.append(f"{breaches} SLA breach{'es' if breaches != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} SLO warning{'s' if warnings != 1 else ''}")
    where = namespaces[0] if len(namespaces) == 1 else f"{len(namespaces)} namespaces"
    subject = f"[Orchestra] {' and '.join(parts)} in {where}"
    if reminder_rules:
        subject += " (reminder)"
    context = {
        "subject": subject,
        "rows": [_row(m, base_url) for m in misses],
        "breaches": breaches,
        "warnings": warnings,
        "reminder_rules": reminder_rules,
        "reminder_minutes": settings.ORCHESTRA_SLA_REMINDER_MINUTES,
        "recipients": recipients,
        "base_url": base_url,
        "now": now,
    }
    return {
        "subject": subject,
        "text": render_to_string("sla/digest.txt", context),
        "html": render_to_string("sla/digest.html", context),
    }


def _message_id() -> str:
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(">") or "orchestra.local"
    return f"<sla-digest-{uuid.uuid4().hex}@{domain}>"


def build_digests(now: datetime | None = None) -> int:
    now = now or timezone.now()
    groups: dict[str, list[SlaMiss]] = defaultdict(list)
    for miss in unsent_misses(now)[:MAX_MISSES_PER_EMAIL * 10]:
        if len(groups[miss.recipients]) < MAX_MISSES_PER_EMAIL:
            groups[miss.recipients].append(miss)
    built = 0
    for recipients, misses in groups.items():
        with transaction.atomic():
            email = render_digest(misses, recipients, now)
            digest = Digest.objects.create(
                recipients=recipients, subject=email["subject"][:255], text_body=email["text"],
                html_body=email["html"], message_id=_message_id(), created_at=now,
            )
            ids = [m.pk for m in misses]
            claimed = SlaMiss.objects.filter(pk__in=ids, digest__isnull=True).update(
                digest=digest
            )
            if claimed != len(ids):
                # A concurrent sweep put some of them in its own email: drop
                # ours; what is left goes out next time.
                transaction.set_rollback(True)
                continue
            quiet = now + reminder_period()
            for level, field in QUIET_FIELD.items():
                rule_ids = {m.rule_id for m in misses if m.rule_id and m.level == level}
                if rule_ids:
                    SlaRule.objects.filter(pk__in=rule_ids).update(**{field: quiet})
            built += 1
    return built


def _message(digest: Digest, connection) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=digest.subject, body=digest.text_body, to=digest.recipient_list,
        connection=connection, headers={"Message-ID": digest.message_id},
    )
    message.attach_alternative(digest.html_body, "text/html")
    return message


def send_pending(now: datetime | None = None, limit: int = 100) -> tuple[int, int]:
    """Send what the outbox holds; returns (sent, failed)."""
    now = now or timezone.now()
    due = Digest.objects.filter(
        Q(state=DigestState.PENDING)
        | Q(state=DigestState.SENDING, claimed_at__lt=now - sending_lease())
    ).order_by("created_at")[:limit]
    due = list(due)
    if not due:
        return 0, 0
    connection = get_connection(fail_silently=False)
    sent = failed = 0
    try:
        for digest in due:
            claimed = Digest.objects.filter(
                pk=digest.pk, state=digest.state, claimed_at=digest.claimed_at
            ).update(state=DigestState.SENDING, claimed_at=timezone.now(),
                     attempts=digest.attempts + 1)
            if not claimed:
                continue  # another sweep is sending it
            try:
                _message(digest, connection).send()
            except (smtplib.SMTPException, OSError) as exc:
                failed += 1
                Digest.objects.filter(pk=digest.pk, state=DigestState.SENDING).update(
                    state=DigestState.PENDING, claimed_at=None, last_error=str(exc)[:2000]
                )
                log.warning("SLA digest %s not sent (attempt %s): %s", digest.pk,
                            digest.attempts + 1, exc)
                if isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException):
                    # The server is unreachable: the rest would fail the same way.
                    failed += _count_left(due, digest)
                    break
                continue
            Digest.objects.filter(pk=digest.pk).update(
                state=DigestState.SENT, sent_at=timezone.now(), last_error=""
            )
            sent += 1
    finally:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 — closing a broken connection
            pass
    return sent, failed


def _count_left(due: list[Digest], current: Digest) -> int:
    return len(due) - due.index(current) - 1


def preview(now: datetime | None = None) -> list[dict]:
    """The emails the next digest would send, without claiming anything."""
    now = now or timezone.now()
    groups: dict[str, list[SlaMiss]] = defaultdict(list)
    for miss in unsent_misses(now)[:MAX_MISSES_PER_EMAIL * 10]:
        groups[miss.recipients].append(miss)
    return [
        {"recipients": recipients, "count": len(misses),
         **render_digest(misses[:MAX_MISSES_PER_EMAIL], recipients, now)}
        for recipients, misses in groups.items()
    ]
