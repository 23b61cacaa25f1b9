"""Batched SLA emails through an outbox (DESIGN §4).

1. ``build_digests``: for each recipient set with misses not yet in an
   email, ONE Digest row claims them all with a conditional update
   (``digest IS NULL``), then stores the rendered email, in one transaction.
2. ``send_pending``: each PENDING digest is claimed (PENDING → SENDING) and
   sent; it becomes SENT only after the SMTP server accepted it. A refused or
   unreachable server puts it back to PENDING for the next sweep.

A crash between the server's "250 OK" and our SENT update leaves the digest
SENDING; after ``ORCHESTRA_SLA_SENDING_LEASE_SECONDS`` (longer than
EMAIL_TIMEOUT, so a live sweep is never overtaken) it is sent again with the
same Message-ID, so mail systems that de-duplicate on it show it once.

Damping: once a rule has been alerted at a level, its next misses at that
level wait ``ORCHESTRA_SLA_REMINDER_MINUTES`` and then go out together as a
reminder, so a rule that keeps missing sends one email per quiet period.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.utils import timezone

from sla.models import Digest, DigestState, Kind, Level, SlaMiss, SlaRule

log = logging.getLogger("orchestra.sla")

# An email lists this many misses and counts the rest (with a link to all).
MAX_LISTED = 100
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
    )


def _row(miss: SlaMiss, base_url: str) -> dict:
    return {
        "miss": miss,
        "flow": f"{miss.namespace}.{miss.flow_id}"
        if miss.flow_id
        else f"{miss.namespace}.*",
        "url": f"{base_url}/executions/{miss.execution_id}/"
        if miss.execution_id
        else "",
        "expected": miss.kind == Kind.EXPECTED,
    }


def render_digest(misses, recipients: str, now: datetime) -> dict[str, str]:
    """Subject, text and HTML of the email for the misses of this queryset
    (also the preview). Lists the first MAX_LISTED, counts all."""
    base_url = settings.ORCHESTRA_BASE_URL.rstrip("/")
    by_level = dict(misses.order_by().values_list("level").annotate(n=Count("id")))
    breaches, warnings = by_level.get(Level.SLA, 0), by_level.get(Level.SLO, 0)
    listed = list(
        misses.select_related("rule").order_by("detected_at", "id")[:MAX_LISTED]
    )
    # A miss that happened while its rule was quiet was held back by damping.
    reminder_rules = sorted(
        {
            m.rule.name
            for m in listed
            if m.rule
            and (getattr(m.rule, QUIET_FIELD[m.level]) or m.detected_at) > m.detected_at
        }
    )
    namespaces = sorted(
        set(misses.order_by().values_list("namespace", flat=True).distinct())
    )
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
        "rows": [_row(m, base_url) for m in listed],
        "more": breaches + warnings - len(listed),
        "breaches": breaches,
        "warnings": warnings,
        "reminder_rules": reminder_rules,
        "reminder_minutes": settings.ORCHESTRA_SLA_REMINDER_MINUTES,
        "recipients": recipients.replace(",", ", "),
        "base_url": base_url,
        "misses_url": f"{base_url}/sla/misses/",
        "now": now,
    }
    return {
        "subject": subject[:255],
        "text": render_to_string("sla/digest.txt", context),
        "html": render_to_string("sla/digest.html", context),
    }


def _message_id() -> str:
    domain = (
        settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(">") or "orchestra.local"
    )
    return f"<sla-digest-{uuid.uuid4().hex}@{domain}>"


def build_digests(now: datetime | None = None) -> int:
    """One Digest per recipient set, holding every unsent miss for it."""
    now = now or timezone.now()
    recipient_sets = list(
        unsent_misses(now).order_by().values_list("recipients", flat=True).distinct()
    )
    built = 0
    for recipients in recipient_sets:
        with transaction.atomic():
            digest = Digest.objects.create(
                recipients=recipients,
                subject="",
                text_body="",
                html_body="",
                message_id=_message_id(),
                created_at=now,
            )
            # Claim first (a concurrent sweep's UPDATE waits for ours and then
            # finds the rows taken), then render what was claimed.
            if (
                not unsent_misses(now)
                .filter(recipients=recipients)
                .update(digest=digest)
            ):
                transaction.set_rollback(True)
                continue
            email = render_digest(digest.misses.all(), recipients, now)
            Digest.objects.filter(pk=digest.pk).update(
                subject=email["subject"],
                text_body=email["text"],
                html_body=email["html"],
            )
            quiet = now + reminder_period()
            for level, field in QUIET_FIELD.items():
                SlaRule.objects.filter(
                    misses__digest=digest, misses__level=level
                ).update(**{field: quiet})
            built += 1
    return built


def _message(digest: Digest, connection) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=digest.subject,
        body=digest.text_body,
        to=digest.recipient_list,
        connection=connection,
        headers={"Message-ID": digest.message_id},
    )
    message.attach_alternative(digest.html_body, "text/html")
    return message


def send_pending(limit: int = 100) -> tuple[int, int]:
    """Send what the outbox holds; returns (sent, failed). The lease is
    wall-clock time, whatever time the sweep reasons about."""
    now = timezone.now()
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
            ).update(
                state=DigestState.SENDING,
                claimed_at=timezone.now(),
                attempts=digest.attempts + 1,
            )
            if not claimed:
                continue  # another sweep is sending it
            try:
                _message(digest, connection).send()
            except (smtplib.SMTPException, OSError) as exc:
                failed += 1
                Digest.objects.filter(pk=digest.pk, state=DigestState.SENDING).update(
                    state=DigestState.PENDING,
                    claimed_at=None,
                    last_error=str(exc)[:2000],
                )
                log.warning(
                    "SLA digest %s not sent (attempt %s): %s",
                    digest.pk,
                    digest.attempts + 1,
                    exc,
                )
                if isinstance(exc, OSError) and not isinstance(
                    exc, smtplib.SMTPException
                ):
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


def preview(now: datetime | None = None, scope: Q | None = None) -> list[dict]:
    """The emails the next digest would send, without claiming anything
    (``scope``: only misses matching it, e.g. the namespaces a user sees)."""
    now = now or timezone.now()
    pending = unsent_misses(now).filter(scope or Q())
    out = []
    for recipients in (
        pending.order_by().values_list("recipients", flat=True).distinct()
    ):
        misses = pending.filter(recipients=recipients)
        out.append(
            {
                "recipients": recipients.replace(",", ", "),
                "count": misses.count(),
                **render_digest(misses, recipients, now),
            }
        )
    return out
