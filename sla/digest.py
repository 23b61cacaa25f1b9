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

A digest the server did not take is tried again with a backoff
(``retry_delay``); misses found meanwhile join that same digest
(``build_digests``), so after an outage each recipient set gets one email.

Damping: once an alert for a rule reached the server, its next misses at
that level wait ``ORCHESTRA_SLA_REMINDER_MINUTES`` and then go out together
as a reminder, so a rule that keeps missing sends one email per quiet period.
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
    summary = merge_summary(
        {}, list(misses.values_list("id", "level", "namespace", "rule_id"))
    )
    return _render(summary, recipients, now)


# What the email needs of every miss it counts; the rows it lists are read in
# full. Ids grow with detection time, so the first ids are the oldest misses.
_SUMMARY = ("miss_id", "level", "namespace", "rule_id")


def merge_summary(summary: dict, rows: list[tuple]) -> dict:
    """A digest's summary (kept on the Digest, so misses folded into an
    unsent digest later are merged without reading the earlier ones again):
    counts per level, namespaces, rule ids per level, the first MAX_LISTED
    miss ids."""
    out = {
        "SLA": summary.get("SLA", 0),
        "SLO": summary.get("SLO", 0),
        "namespaces": set(summary.get("namespaces", [])),
        "rules": {
            lvl: set(summary.get("rules", {}).get(lvl, [])) for lvl in QUIET_FIELD
        },
        "first": list(summary.get("first", [])),
    }
    for miss_id, level, namespace, rule_id in rows:
        out[level] += 1
        out["namespaces"].add(namespace)
        if rule_id:
            out["rules"][level].add(rule_id)
        out["first"].append(miss_id)
    out["first"] = sorted(out["first"])[:MAX_LISTED]
    out["namespaces"] = sorted(out["namespaces"])
    out["rules"] = {lvl: sorted(ids) for lvl, ids in out["rules"].items()}
    return out


def _render(summary: dict, recipients: str, now: datetime) -> dict[str, str]:
    base_url = settings.ORCHESTRA_BASE_URL.rstrip("/")
    breaches, warnings = summary["SLA"], summary["SLO"]
    listed = list(
        SlaMiss.objects.filter(pk__in=summary["first"])
        .select_related("rule")
        .with_current_state()
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
    namespaces = summary["namespaces"]
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
    """One outgoing email per recipient set holding every unsent miss for it.

    New misses go into the recipient set's digest that is still waiting to
    be sent (PENDING: never accepted by a server), if there is one, which is
    rendered again: after an outage one email comes, listing all that
    happened meanwhile, never a burst of the digests built while it lasted.
    A digest being sent (SENDING) is not touched: the server may have
    accepted it already. Returns how many digests were built or grown."""
    now = now or timezone.now()
    recipient_sets = list(
        pending_alerts(now).order_by().values_list("recipients", flat=True).distinct()
    )
    built = 0
    for recipients in recipient_sets:
        with transaction.atomic():
            # The lock makes a concurrent send of this digest wait for the
            # merged version (its conditional claim re-reads the row).
            digest = (
                Digest.objects.select_for_update()
                .filter(recipients=recipients, state=DigestState.PENDING)
                .order_by("created_at")
                .first()
            )
            if digest is None:
                digest = Digest.objects.create(
                    recipients=recipients,
                    subject="",
                    text_body="",
                    html_body="",
                    message_id=_message_id(),
                    created_at=now,
                )
            # Claim first, then render what was claimed.
            rows = _claim(recipients, digest, now)
            if not rows:
                transaction.set_rollback(True)
                continue
            summary = merge_summary(digest.summary or {}, rows)
            email = _render(summary, recipients, now)
            Digest.objects.filter(pk=digest.pk).update(
                subject=email["subject"],
                text_body=email["text"],
                html_body=email["html"],
                summary=summary,
            )
            built += 1
    return built


def _quiet(digest: Digest, now: datetime) -> None:
    """Damping starts when an alert reached the server: the rules in it
    hold their next misses for the reminder period."""
    quiet = now + reminder_period()
    for level, field in QUIET_FIELD.items():
        rules = (digest.summary or {}).get("rules", {}).get(level)
        if rules:
            SlaRule.objects.filter(pk__in=rules).update(**{field: quiet})


def retry_delay(attempts: int) -> timedelta:
    """Backoff between attempts at one digest: 4, 8, 16 ... s, at most
    ORCHESTRA_SLA_RETRY_MAX_SECONDS. New misses meanwhile join it."""
    cap = settings.ORCHESTRA_SLA_RETRY_MAX_SECONDS
    return timedelta(seconds=min(cap, 2 ** max(attempts, 1)))


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
        Q(state=DigestState.PENDING, next_attempt_at__isnull=True)
        | Q(state=DigestState.PENDING, next_attempt_at__lte=now)
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
            digest.refresh_from_db()  # what a build may have merged into it meanwhile
            try:
                _message(digest, connection).send()
            except (smtplib.SMTPException, OSError) as exc:
                failed += 1
                Digest.objects.filter(pk=digest.pk, state=DigestState.SENDING).update(
                    state=DigestState.PENDING,
                    claimed_at=None,
                    next_attempt_at=timezone.now() + retry_delay(digest.attempts + 1),
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
                    left = due[due.index(digest) + 1 :]
                    failed += len(left)
                    Digest.objects.filter(
                        pk__in=[d.pk for d in left], state=DigestState.PENDING
                    ).update(next_attempt_at=timezone.now() + retry_delay(1))
                    break
                continue
            sent_at = timezone.now()
            Digest.objects.filter(pk=digest.pk).update(
                state=DigestState.SENT, sent_at=sent_at, last_error=""
            )
            _quiet(digest, sent_at)
            sent += 1
    finally:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 — closing a broken connection
            pass
    return sent, failed


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
