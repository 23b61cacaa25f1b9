"""Batched SLA emails through an outbox (DESIGN §4).

1. The sweep queues each new miss that has recipients (``PendingAlert``, in
   the statement that records it). ``build_digests``: for each recipient set
   in the queue, ONE Digest row claims all its misses by deleting them from
   the queue, then stores the rendered email, in one transaction.
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
from django.db import connection, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from sla.models import (
    Digest,
    DigestState,
    Kind,
    Level,
    PendingAlert,
    SlaMiss,
    SlaRule,
)

log = logging.getLogger("orchestra.sla")

# An email lists this many misses and counts the rest (with a link to all).
MAX_LISTED = 100
QUIET_FIELD = {Level.SLO: "slo_quiet_until", Level.SLA: "sla_quiet_until"}


def reminder_period() -> timedelta:
    return timedelta(minutes=settings.ORCHESTRA_SLA_REMINDER_MINUTES)


def sending_lease() -> timedelta:
    return timedelta(seconds=settings.ORCHESTRA_SLA_SENDING_LEASE_SECONDS)


def pending_alerts(now: datetime):
    """The digest queue without the misses of damped rules."""
    return PendingAlert.objects.exclude(
        level=Level.SLO, rule__slo_quiet_until__gt=now
    ).exclude(level=Level.SLA, rule__sla_quiet_until__gt=now)


def unsent_misses(now: datetime):
    """Misses waiting for an email, without those of damped rules."""
    return SlaMiss.objects.filter(pk__in=pending_alerts(now).values("miss_id"))


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
    (the preview). Lists the first MAX_LISTED, counts all."""
    summary = misses.values_list("id", "level", "namespace", "rule_id")
    return _render(list(summary), recipients, now)


# What the email needs of every miss it counts; the rows it lists are read in
# full. Ids grow with detection time, so the first ids are the oldest misses.
_SUMMARY = ("miss_id", "level", "namespace", "rule_id")


def _render(summary: list[tuple], recipients: str, now: datetime) -> dict[str, str]:
    base_url = settings.ORCHESTRA_BASE_URL.rstrip("/")
    breaches = sum(1 for row in summary if row[1] == Level.SLA)
    warnings = len(summary) - breaches
    first = sorted(row[0] for row in summary)[:MAX_LISTED]
    listed = list(
        SlaMiss.objects.filter(pk__in=first)
        .select_related("rule", "execution")
        .order_by("detected_at", "id")
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
    namespaces = sorted({row[2] for row in summary})
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


def _claim(recipients: str, digest: Digest, now: datetime) -> list[tuple]:
    """Take the queued misses for ``recipients`` out of the queue with one
    DELETE, put them in ``digest`` and return their summary rows. A
    concurrent sweep's DELETE waits for ours and then finds the rows gone."""
    queued = pending_alerts(now).filter(recipients=recipients)
    select, params = queued.values("miss_id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {PendingAlert._meta.db_table} WHERE miss_id IN ({select}) "
            f"RETURNING {', '.join(_SUMMARY)}",
            params,
        )
        rows = cursor.fetchall()
        ids = [row[0] for row in rows]
        # On PostgreSQL a HOT update: no index of sla_slamiss mentions digest_id.
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {SlaMiss._meta.db_table} SET digest_id = %s WHERE id = ANY(%s)",
                [digest.pk, ids],
            )
        else:  # SQLite limits the parameters of a statement
            for start in range(0, len(ids), 5000):
                SlaMiss.objects.filter(pk__in=ids[start : start + 5000]).update(
                    digest=digest
                )
    return rows


def build_digests(now: datetime | None = None) -> int:
    """One Digest per recipient set, holding every unsent miss for it."""
    now = now or timezone.now()
    recipient_sets = list(
        pending_alerts(now).order_by().values_list("recipients", flat=True).distinct()
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
            # Claim first, then render what was claimed.
            summary = _claim(recipients, digest, now)
            if not summary:
                transaction.set_rollback(True)
                continue
            email = _render(summary, recipients, now)
            Digest.objects.filter(pk=digest.pk).update(
                subject=email["subject"],
                text_body=email["text"],
                html_body=email["html"],
            )
            quiet = now + reminder_period()
            for level, field in QUIET_FIELD.items():
                rules = {row[3] for row in summary if row[1] == level and row[3]}
                if rules:
                    SlaRule.objects.filter(pk__in=rules).update(**{field: quiet})
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
