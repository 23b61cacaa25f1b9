"""SLA rules, stored deadlines, misses and the alert outbox (DESIGN §4).

The engine never imports this app: deadlines are written by receivers of the
execution signals (sla/deadlines.py) and checked by the sweep (sla/sweep.py).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from executions.models import TERMINAL
from orchestra.lib.durations import format_duration
from orchestra.lib.labels import format_labels


class Level(models.TextChoices):
    SLO = "SLO", "SLO (warning)"
    SLA = "SLA", "SLA (breach)"


class Behavior(models.TextChoices):
    NONE = "NONE", "Alert only"
    CANCEL = "CANCEL", "Cancel the execution"
    FAIL = "FAIL", "Fail the execution"


class SlaRuleQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)

    def covering(self, namespace: str, flow_id: str | None = None):
        """Rules whose namespace is ``namespace`` or one of its parents, for
        this flow or for every flow."""
        parts = namespace.split(".")
        prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
        qs = self.filter(namespace__in=prefixes)
        if flow_id is None:
            return qs.filter(flow_id="")
        return qs.filter(Q(flow_id="") | Q(flow_id=flow_id))


class SlaRule(models.Model):
    name = models.CharField(max_length=200)
    namespace = models.CharField(
        max_length=255, help_text="Applies to this namespace and its children."
    )
    flow_id = models.CharField(
        max_length=255, blank=True, default="", help_text="Empty: every flow."
    )
    labels = models.JSONField(
        default=dict,
        blank=True,
        help_text="Executions must carry all these labels for the rule to apply.",
    )
    slo = models.DurationField(null=True, blank=True, help_text="Warning threshold.")
    sla = models.DurationField(null=True, blank=True, help_text="Breach threshold.")
    # "At least N successful executions per cron window": checked at each cron
    # time over the window since the previous cron time.
    expected_runs = models.PositiveIntegerField(null=True, blank=True)
    expected_cron = models.CharField(max_length=100, blank=True, default="")
    tz = models.CharField("time zone", max_length=64, default="UTC")
    recipients = models.TextField(
        blank=True, default="", help_text="Email addresses, separated by commas."
    )
    on_breach = models.CharField(
        max_length=8, choices=Behavior.choices, default=Behavior.NONE
    )
    add_labels = models.JSONField(
        default=dict, blank=True, help_text="Labels added to a breaching execution."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Expected-run check: every window ending at or before this was checked.
    expected_checked_until = models.DateTimeField(null=True, blank=True)
    # Damping, per level: after an alert, further misses of this rule wait
    # until then and go out together as one reminder instead of a flood.
    slo_quiet_until = models.DateTimeField(null=True, blank=True)
    sla_quiet_until = models.DateTimeField(null=True, blank=True)

    objects = SlaRuleQuerySet.as_manager()

    class Meta:
        verbose_name = "SLA rule"
        ordering = ["namespace", "flow_id", "name"]
        indexes = [models.Index(fields=["namespace", "flow_id"], name="slarule_scope")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # Stored normalised ("a@x, b@y", sorted, lower case): misses group by it.
        self.recipients = ", ".join(normalize_recipients(self.recipients))
        super().save(*args, **kwargs)
        if not self.enabled:
            self.void_open_deadlines()

    def delete(self, *args, **kwargs):
        self.void_open_deadlines()
        return super().delete(*args, **kwargs)

    def void_open_deadlines(self) -> int:
        """A disabled or deleted rule stops alerting and acting at once: the
        open deadlines it set (its durations, or the SLA/SLO inputs it acts
        on) are voided. Thresholds from a flow's own sla: list stay."""
        return Deadline.objects.filter(
            rule_id=self.pk, state=DeadlineState.OPEN, key__in=["rule", "input"]
        ).update(state=DeadlineState.VOID)

    @property
    def scope(self) -> str:
        where = (
            f"{self.namespace}.{self.flow_id}"
            if self.flow_id
            else f"{self.namespace}.*"
        )
        if self.labels:
            where += " " + format_labels(dict(sorted(self.labels.items())))
        return where

    @property
    def recipient_list(self) -> list[str]:
        return normalize_recipients(self.recipients)

    @property
    def sets_durations(self) -> bool:
        """Gives executions an SLO/SLA, or acts on their own SLA/SLO inputs
        (a rule that only expects runs per window does neither)."""
        return bool(self.slo or self.sla or not self.expected_cron)

    def specificity(self) -> tuple[int, int, int]:
        """Flow over namespace, child namespace over parent, more labels over fewer."""
        return (
            1 if self.flow_id else 0,
            self.namespace.count(".") + 1,
            len(self.labels),
        )

    def matches_labels(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(str(labels.get(k)) == str(v) for k, v in (self.labels or {}).items())


def normalize_recipients(text: str) -> list[str]:
    parts = text.replace(";", ",").replace("\n", ",").split(",")
    return sorted({p.strip().lower() for p in parts if p.strip()})


def threshold_source(key: str, rule: SlaRule | None) -> str:
    """Where a deadline's or a miss's threshold comes from, for people."""
    if key.startswith("flow:"):
        return f"flow sla '{key[5:]}'"
    if key == "input":
        return "SLA/SLO input"
    return f"rule '{rule.name}'" if rule else "rule"


class DeadlineState(models.TextChoices):
    OPEN = "open"
    MET = "met"
    MISSED = "missed"
    VOID = "void"  # the execution ended without ever starting


class Kind(models.TextChoices):
    DURATION = "duration"
    ASSERTION = "assertion"  # flow sla: EXECUTION_ASSERTION, checked at the end
    EXPECTED = "expected"  # not enough successful runs in a cron window


class Deadline(models.Model):
    """One threshold of one execution, written when it is created.

    ``due_at`` is set when the execution starts (started + threshold), so the
    sweep is a range query on the open ones; a deadline met by an execution
    that ended in time is closed by the end-of-execution receiver.
    """

    # Every index here is paid for by the sweep when it closes a burst of
    # due deadlines (the state change is never a HOT update): the execution
    # is served by deadline_unique, the rule by the partial deadline_open_rule.
    execution = models.ForeignKey(
        "executions.Execution",
        on_delete=models.CASCADE,
        related_name="sla_deadlines",
        db_index=False,
    )
    rule = models.ForeignKey(
        SlaRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deadlines",
        db_index=False,
    )
    # Where the threshold comes from and what keeps misses unique:
    # "rule", "input" (SLA/SLO inputs), "flow:<id>" (the flow's sla: list).
    key = models.CharField(max_length=120)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DURATION)
    level = models.CharField(max_length=3, choices=Level.choices)
    threshold = models.DurationField(null=True, blank=True)
    assertion = models.TextField(blank=True, default="")
    behavior = models.CharField(
        max_length=8, choices=Behavior.choices, default=Behavior.NONE
    )
    labels = models.JSONField(default=dict, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(
        max_length=8, choices=DeadlineState.choices, default=DeadlineState.OPEN
    )
    # The execution's attempt (Execution.attempt): a restart is measured from
    # the restart and gets deadlines of its own (sla/deadlines.py).
    attempt = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "key", "level", "attempt"], name="deadline_unique"
            )
        ]
        indexes = [
            # The sweep: open deadlines by due time. Closed ones (almost all
            # rows over time) are not in the index at all.
            models.Index(
                fields=["due_at"], name="deadline_open_due", condition=Q(state="open")
            ),
            models.Index(
                fields=["execution"],
                name="deadline_open_exec",
                condition=Q(state="open"),
            ),
            # The tick's assertion check (every second): few rows, and without
            # it the planner, which cannot tell open from closed due times,
            # walks every open deadline (40 ms at 10,000 open).
            models.Index(
                fields=["due_at"],
                name="deadline_open_assert_due",
                condition=Q(state="open", kind="assertion"),
            ),
            # Disabling or deleting a rule voids its open deadlines.
            models.Index(
                fields=["rule"], name="deadline_open_rule", condition=Q(state="open")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.level} {self.key} of execution {self.execution_id}"

    @property
    def source(self) -> str:
        return threshold_source(self.key, self.rule if self.rule_id else None)


class SlaMissQuerySet(models.QuerySet):
    def in_namespace(self, prefix: str):
        return self.filter(Q(namespace=prefix) | Q(namespace__startswith=prefix + "."))

    def with_current_state(self):
        """``current_state``: the execution's state now (``execution_state``
        is the state when the miss was seen). One join on the primary key."""
        return self.annotate(current_state=models.F("execution__state"))


class SlaMiss(models.Model):
    """One breach: of a (rule, execution, level), or a cron window without
    enough successful runs (no execution)."""

    # A burst of misses pays for every index of this table: the execution is
    # served by slamiss_unique_execution, and no index mentions ``digest``, so
    # the digest's claim is a HOT update (the table keeps room for it on each
    # page: fillfactor 50 on PostgreSQL, set in migration 0002). Rules and
    # digests are only deleted through the ORM, which nulls the references,
    # so their foreign keys have no database constraint: its per-row check at
    # commit cost the 10,000-miss burst about 150 ms each.
    rule = models.ForeignKey(
        SlaRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="misses",
        db_constraint=False,
    )
    execution = models.ForeignKey(
        "executions.Execution",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="sla_misses",
        db_index=False,
    )
    key = models.CharField(max_length=120)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DURATION)
    level = models.CharField(max_length=3, choices=Level.choices)
    # Which attempt of the execution missed: a restarted execution that breaches
    # again is a new miss; the same attempt never gives two.
    attempt = models.PositiveIntegerField(default=1)
    namespace = models.CharField(max_length=255)
    flow_id = models.CharField(max_length=255, blank=True, default="")
    threshold = models.DurationField(null=True, blank=True)
    # Age of the execution when the miss was seen (its full duration if it had ended).
    duration = models.DurationField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    execution_state = models.CharField(max_length=16, blank=True, default="")
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    expected = models.PositiveIntegerField(null=True, blank=True)
    actual = models.PositiveIntegerField(null=True, blank=True)
    detected_at = models.DateTimeField(default=timezone.now)
    behavior = models.CharField(
        max_length=8, choices=Behavior.choices, default=Behavior.NONE
    )
    labels = models.JSONField(default=dict, blank=True)
    # What the sweep did about it ("cancelled", "labels added", or why not).
    action = models.TextField(blank=True, default="")
    actions_done = models.BooleanField(default=False)
    # Normalised recipient list at detection time; empty: nobody to email.
    recipients = models.TextField(blank=True, default="")
    digest = models.ForeignKey(
        "Digest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="misses",
        db_index=False,
        db_constraint=False,
    )

    objects = SlaMissQuerySet.as_manager()

    class Meta:
        verbose_name = "SLA miss"
        verbose_name_plural = "SLA misses"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "key", "level", "attempt"],
                name="slamiss_unique_execution",
                condition=Q(execution__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["rule", "window_end"],
                name="slamiss_unique_window",
                condition=Q(execution__isnull=True),
            ),
        ]
        indexes = [
            # Lists are newest first by id (ids grow with detection time), so the
            # primary key serves the unfiltered list: every index costs the sweep.
            models.Index(fields=["namespace", "-id"], name="slamiss_ns"),
            # Misses waiting for an email are found through PendingAlert, not
            # an index here: no index may mention digest (see PendingAlert).
            models.Index(
                fields=["id"],
                name="slamiss_actions_due",
                condition=Q(actions_done=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.level} miss {self.key} ({self.namespace}.{self.flow_id})"

    @property
    def threshold_text(self) -> str:
        if self.kind == Kind.EXPECTED:
            return f"≥ {self.expected} successful run(s)"
        if self.kind == Kind.ASSERTION:
            return "assertion"
        return format_duration(self.threshold)

    @property
    def duration_text(self) -> str:
        if self.kind == Kind.EXPECTED:
            return f"{self.actual} successful run(s)"
        return format_duration(self.duration)

    @property
    def ongoing(self) -> bool:
        """The execution was still going when the miss was seen."""
        return bool(self.execution_state) and self.execution_state not in TERMINAL

    @property
    def source(self) -> str:
        return threshold_source(self.key, self.rule if self.rule_id else None)

    @property
    def state_now(self) -> str:
        """The execution's state now, when a query asked for it
        (``with_current_state``) and it differs from the state at detection."""
        now = getattr(self, "current_state", None) or ""
        return now if now != self.execution_state else ""


class PendingAlert(models.Model):
    """A miss waiting for its email: the digest's queue.

    Written with the miss (same statement) when it has recipients, deleted
    when a digest claims it. Claiming a burst deletes these narrow rows and
    sets ``SlaMiss.digest`` in place, instead of an UPDATE that rewrites
    every index entry of every miss (bench/sla.py, 10,000 misses: 430 ms
    for that UPDATE, about 120 ms for this).
    The table holds only what is unsent, so it stays small.
    """

    # Written from the rows the same statement inserted, so no constraint is
    # checked per row at commit (see SlaMiss.rule).
    miss = models.OneToOneField(
        SlaMiss,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="pending",
        db_constraint=False,
    )
    recipients = models.TextField()
    level = models.CharField(max_length=3, choices=Level.choices)
    rule = models.ForeignKey(
        SlaRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    namespace = models.CharField(max_length=255)

    def __str__(self) -> str:
        return f"miss {self.miss_id} → {self.recipients}"


class DigestState(models.TextChoices):
    PENDING = "pending"  # built, not yet accepted by the SMTP server
    SENDING = "sending"  # claimed by a sweep that is talking to the server
    SENT = "sent"


class Digest(models.Model):
    """One outgoing email (the outbox row): all misses for one recipient set.

    The body is rendered once, when the misses are claimed, so a retry sends
    exactly the same message with the same Message-ID.
    """

    recipients = models.TextField()
    subject = models.CharField(max_length=255)
    text_body = models.TextField()
    html_body = models.TextField()
    message_id = models.CharField(max_length=255, unique=True)
    state = models.CharField(
        max_length=8, choices=DigestState.choices, default=DigestState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # A refused or failed send waits until then (backoff, sla.digest.retry_delay).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Counts, namespaces, rules and the first ids of its misses
    # (sla.digest.merge_summary): later misses are merged without a re-read.
    summary = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["created_at"], name="digest_unsent", condition=~Q(state="sent")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.recipients} ({self.state})"

    @property
    def recipient_list(self) -> list[str]:
        return normalize_recipients(self.recipients)
