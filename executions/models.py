"""Executions, task runs, logs, state history and workers.

Over 500 lines on purpose: Django finds an app's models in ``models.py`` and
its migrations name them there; the tables stay in one module rather than a
models package whose only gain would be shorter files.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from flows.models import spec_for_source


class State(models.TextChoices):
    CREATED = "CREATED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RETRYING = "RETRYING"
    RESTARTED = "RESTARTED"
    KILLING = "KILLING"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    KILLED = "KILLED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"  # task runs only: runIf was false


TERMINAL = frozenset(
    {
        State.SUCCESS,
        State.WARNING,
        State.FAILED,
        State.KILLED,
        State.CANCELLED,
        State.SKIPPED,
    }
)
ACTIVE = frozenset(
    {
        State.CREATED,
        State.QUEUED,
        State.RUNNING,
        State.PAUSED,
        State.RETRYING,
        State.RESTARTED,
        State.KILLING,
    }
)


class Cause(models.TextChoices):
    USER = "user"
    API = "api"
    CLI = "cli"
    EXECUTOR = "executor"
    WORKER = "worker"
    SWEEP = "sweep"
    SLA = "sla"
    TRIGGER = "trigger"
    SYSTEM = "system"


class ExecutionQuerySet(models.QuerySet):
    def active(self):
        return self.exclude(state__in=TERMINAL)

    def in_namespace(self, prefix: str, children: bool = True):
        if children:
            return self.filter(
                Q(namespace=prefix) | Q(namespace__startswith=prefix + ".")
            )
        return self.filter(namespace=prefix)

    def with_labels(self, labels: dict[str, str]):
        # JSON containment uses the GIN index on PostgreSQL.
        if not labels:
            return self
        if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
            return self.filter(labels__contains=labels)
        qs = self
        for key, value in labels.items():
            qs = qs.filter(**{f"labels__{key}": value})
        return qs


class _Timed:
    """What executions and task runs both answer: ended yet, and for how long
    (up to now while running)."""

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    def duration(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.ended_at or timezone.now()) - self.started_at


class Execution(_Timed, models.Model):
    namespace = models.CharField(max_length=255)
    flow_id = models.CharField(max_length=255)
    flow_revision = models.ForeignKey(
        "flows.FlowRevision",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="executions",
    )
    revision = models.PositiveIntegerField(default=0)
    # Flow YAML for runs not pinned to a stored revision (``orchestra flows test``).
    source = models.TextField(blank=True, default="")
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.CREATED
    )
    # Where a KILLING execution ends: KILLED (kill) or CANCELLED (cancel, cleanup).
    stop_state = models.CharField(max_length=16, blank=True, default="")
    inputs = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    variables = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    trigger = models.JSONField(default=dict, blank=True)
    trigger_id = models.CharField(max_length=255, blank=True, default="")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
    )
    parent_taskrun_id = models.BigIntegerField(null=True, blank=True)
    original = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays"
    )
    error = models.TextField(blank=True, default="")
    attempt = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    # Start no earlier than this (Subflow/ForEachItem ``scheduleDate``): the
    # execution waits in CREATED; a countdown message starts it, and the
    # liveness sweep (``start_scheduled``) is the net for a lost message.
    scheduled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Last sign of life: a state change of the execution or one of its task runs,
    # or a log line. Stuck detection reads this column.
    progress_at = models.DateTimeField(default=timezone.now)

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["namespace", "flow_id", "-created_at"],
                name="ex_ns_flow_created",
            ),
            models.Index(fields=["-created_at"], name="ex_created"),
            # The sweep that starts scheduled executions whose message was lost.
            models.Index(
                fields=["scheduled_at"],
                name="ex_scheduled_start",
                condition=Q(state="CREATED", scheduled_at__isnull=False),
            ),
            # Overview and namespace counts: index-only scans over a time window.
            models.Index(fields=["-created_at", "state"], name="ex_created_state"),
            models.Index(fields=["state", "-created_at"], name="ex_state_created"),
            models.Index(
                fields=["trigger_id"], name="ex_trigger", condition=~Q(trigger_id="")
            ),
            # Stuck detection: active executions that have a parent (subflows).
            models.Index(
                fields=["parent"],
                name="ex_active_child",
                condition=Q(parent__isnull=False)
                & Q(
                    state__in=[
                        "CREATED",
                        "QUEUED",
                        "RUNNING",
                        "PAUSED",
                        "RETRYING",
                        "RESTARTED",
                        "KILLING",
                    ]
                ),
            ),
            # Flow concurrency: slots in use and queued executions of one flow.
            models.Index(
                fields=["namespace", "flow_id", "state"],
                name="ex_flow_waiting_or_holding",
                condition=Q(
                    state__in=[
                        "CREATED",
                        "QUEUED",
                        "RUNNING",
                        "PAUSED",
                        "RETRYING",
                        "RESTARTED",
                    ]
                ),
            ),
            models.Index(
                fields=["progress_at"],
                name="ex_active_progress",
                condition=Q(
                    state__in=[
                        "CREATED",
                        "QUEUED",
                        "RUNNING",
                        "PAUSED",
                        "RETRYING",
                        "RESTARTED",
                        "KILLING",
                    ]
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.namespace}.{self.flow_id} {self.state}"

    def get_absolute_url(self) -> str:
        return f"/executions/{self.pk}/"

    @property
    def spec(self):
        if self.flow_revision_id:
            return self.flow_revision.spec
        return spec_for_source(self.source)


class TaskRun(_Timed, models.Model):
    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="taskruns"
    )
    task_id = models.CharField(max_length=255)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    # Loop iteration value (text, JSON for structures); empty outside loops.
    value = models.TextField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.CREATED
    )
    flowable = models.BooleanField(default=False)
    outputs = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    worker = models.ForeignKey(
        "Worker",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="taskruns",
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Earliest start: retries wait for their delay.
    scheduled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Times this attempt went back to CREATED because its worker was lost
    # (not a retry of the task's own policy: the attempt number stays).
    resubmits = models.PositiveSmallIntegerField(default=0)
    # When the sweep last sent it again (a lost message); None: only sent once.
    redispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["execution", "task_id"], name="tr_execution_task"),
            models.Index(
                fields=["worker"],
                name="tr_running_worker",
                condition=Q(state="RUNNING"),
            ),
            models.Index(
                fields=["created_at"],
                name="tr_created_waiting",
                condition=Q(state="CREATED"),
            ),
            # Stuck detection: the in-flight task runs of a set of executions.
            models.Index(
                fields=["execution"],
                name="tr_in_flight",
                condition=Q(state__in=["CREATED", "RUNNING"]),
            ),
            # Pauses due to end by themselves (the wake-up sweep).
            models.Index(
                fields=["scheduled_at"],
                name="tr_paused_wake",
                condition=Q(state="PAUSED"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} #{self.pk} {self.state}"


class LogEntry(models.Model):
    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="logs"
    )
    taskrun = models.ForeignKey(
        TaskRun, null=True, blank=True, on_delete=models.CASCADE, related_name="logs"
    )
    task_id = models.CharField(max_length=255, blank=True, default="")
    attempt = models.PositiveIntegerField(default=1)
    level = models.CharField(max_length=8, default="INFO")
    timestamp = models.DateTimeField(default=timezone.now)
    message = models.TextField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["execution", "id"], name="log_execution_id")]

    def __str__(self) -> str:
        return f"{self.timestamp:%H:%M:%S} {self.level} {self.message[:60]}"


class StateChange(models.Model):
    """Append-only history: every state change, who or what caused it, and why."""

    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="history"
    )
    taskrun = models.ForeignKey(
        TaskRun, null=True, blank=True, on_delete=models.CASCADE, related_name="history"
    )
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    at = models.DateTimeField(default=timezone.now)
    cause = models.CharField(max_length=16, choices=Cause.choices)
    actor = models.CharField(max_length=255, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["execution", "id"], name="sc_execution"),
            models.Index(fields=["-at"], name="sc_at"),
            models.Index(
                fields=["-at"],
                name="sc_people_sweeps",
                condition=Q(taskrun__isnull=True)
                & Q(cause__in=["user", "api", "cli", "sweep", "sla"]),
            ),
        ]

    def __str__(self) -> str:
        what = (
            f"task run {self.taskrun_id}"
            if self.taskrun_id
            else f"execution {self.execution_id}"
        )
        return f"{what}: {self.from_state or '∅'} → {self.to_state} ({self.cause})"


class WorkerState(models.TextChoices):
    ALIVE = "alive"
    DEAD = "dead"
    STOPPED = "stopped"


class Worker(models.Model):
    name = models.CharField(max_length=255, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.CharField(max_length=255, blank=True, default="")
    state = models.CharField(
        max_length=8, choices=WorkerState.choices, default=WorkerState.ALIVE
    )
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat_at = models.DateTimeField(default=timezone.now)
    dead_at = models.DateTimeField(null=True, blank=True)
    # Ids of the task runs this worker held at its last heartbeat (None: a
    # worker that does not report them, so liveness judges it by beats alone).
    running = models.JSONField(null=True, blank=True, default=None)

    class Meta:
        ordering = ["-last_heartbeat_at"]
        indexes = [
            models.Index(
                fields=["last_heartbeat_at"],
                name="worker_alive_beat",
                condition=Q(state="alive"),
            )
        ]

    def __str__(self) -> str:
        return self.name


class CleanupRun(models.Model):
    """One stuck-executions cleanup: the filters, the previewed verdicts and,
    once confirmed, what was cancelled and what was skipped.

    The confirm acts on exactly ``preview`` (capped at ``max_count``); every
    StateChange it writes names this row in ``details["cleanup_run"]``.
    """

    class Status(models.TextChoices):
        PREVIEWED = "previewed"
        RUNNING = "running"
        DONE = "done"

    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=255, blank=True, default="")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cleanup_runs",
    )
    cause = models.CharField(max_length=16, choices=Cause.choices, default=Cause.USER)
    older_than_minutes = models.PositiveIntegerField(default=5)
    namespace = models.CharField(max_length=255, blank=True, default="")
    flow_id = models.CharField(max_length=255, blank=True, default="")
    max_count = models.PositiveIntegerField(null=True, blank=True)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PREVIEWED
    )
    # [{id, namespace, flow_id, state, progress_at, kind, reason, worker}, ...]
    preview = models.JSONField(default=list, blank=True)
    # The first spared executions with their reasons, shown beside the preview.
    spared = models.JSONField(default=list, blank=True)
    spared_count = models.PositiveIntegerField(default=0)
    # Stuck but outside the user's operator namespaces: shown, never cancelled.
    not_permitted = models.JSONField(default=list, blank=True)
    beyond_cap = models.PositiveIntegerField(default=0)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_by = models.CharField(max_length=255, blank=True, default="")
    cancelled_ids = models.JSONField(default=list, blank=True)
    # [{id, reason}, ...]: previewed but left alone on confirm.
    skipped = models.JSONField(default=list, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The retention sweep (executions/stuck/retention.py).
            models.Index(
                fields=["created_at"],
                name="cleanup_run_preview_created",
                condition=models.Q(status="previewed"),
            )
        ]

    def __str__(self) -> str:
        return f"cleanup #{self.pk} ({self.status}, {len(self.preview)} previewed)"

    def get_absolute_url(self) -> str:
        return f"/stuck/{self.pk}/"

    @property
    def preview_ids(self) -> list[int]:
        return [row["id"] for row in self.preview]


class AutoCleanup(models.Model):
    """Automatic cleanup of stuck executions for a namespace prefix (and its
    children), run by the beat schedule. Off unless a row says otherwise."""

    namespace = models.CharField(
        max_length=255,
        unique=True,
        help_text=(
            "Namespace prefix; children included. A more specific prefix takes "
            "precedence for its own namespaces."
        ),
    )
    enabled = models.BooleanField(default=False)
    older_than_minutes = models.PositiveIntegerField(default=60)
    daily_cap = models.PositiveIntegerField(
        default=100,
        help_text=(
            "At most this many executions cancelled per UTC day for this prefix."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["namespace"]

    def __str__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"auto-cleanup {self.namespace or '*'} ({state}, {self.older_than_minutes} min)"

    @property
    def actor(self) -> str:
        return f"auto-cleanup:{self.namespace or '*'}"


class TriggerKind(models.TextChoices):
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"
    FLOW = "flow"


class Trigger(models.Model):
    """The live state of one trigger of a deployed flow.

    Rows are written when a flow is saved (executions/triggers/registry.py).
    For schedules, ``next_date`` is the next date to fire: the scheduler
    selects ``next_date <= now`` with one indexed query.
    """

    namespace = models.CharField(max_length=255)
    flow_id = models.CharField(max_length=255)
    trigger_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=TriggerKind.choices)
    revision = models.PositiveIntegerField(default=1)
    disabled = models.BooleanField(default=False)
    cron = models.CharField(max_length=255, blank=True, default="")
    time_zone = models.CharField(max_length=64, blank=True, default="")
    next_date = models.DateTimeField(null=True, blank=True)
    last_date = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["namespace", "flow_id", "trigger_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "flow_id", "trigger_id"], name="trigger_unique_id"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_date"],
                name="trigger_schedule_due",
                condition=Q(kind="schedule", disabled=False),
            ),
            models.Index(
                fields=["namespace"],
                name="trigger_flow_listeners",
                condition=Q(kind="flow", disabled=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}.{self.flow_id}:{self.trigger_id} ({self.kind})"


class TriggerEvent(models.Model):
    """One firing of a trigger: a scheduled (or backfilled) date, or the end
    of a source execution for a Flow trigger. The partial unique constraints
    make each date, and each source execution attempt, fire at most once,
    whatever number of schedulers or processes run at the same time."""

    class Status(models.TextChoices):
        PENDING = "pending"
        FIRED = "fired"
        SKIPPED = "skipped"
        FAILED = "failed"

    namespace = models.CharField(max_length=255)
    flow_id = models.CharField(max_length=255)
    trigger_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=TriggerKind.choices)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    backfill = models.BooleanField(default=False)
    source_execution_id = models.BigIntegerField(null=True, blank=True)
    source_attempt = models.PositiveIntegerField(null=True, blank=True)
    execution = models.ForeignKey(
        Execution, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.FIRED
    )
    reason = models.TextField(blank=True, default="")
    actor = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "flow_id", "trigger_id", "scheduled_at"],
                name="trigger_event_once_per_date",
                condition=Q(scheduled_at__isnull=False),
            ),
            models.UniqueConstraint(
                fields=[
                    "namespace",
                    "flow_id",
                    "trigger_id",
                    "source_execution_id",
                    "source_attempt",
                ],
                name="trigger_event_once_per_source",
                condition=Q(source_execution_id__isnull=False),
            ),
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="trigger_event_pending",
                condition=Q(status="pending"),
            ),
            # The retention sweep (executions/triggers/retention.py).
            models.Index(fields=["created_at"], name="trigger_event_created"),
        ]

    def __str__(self) -> str:
        when = self.scheduled_at or f"execution {self.source_execution_id}"
        return f"{self.namespace}.{self.flow_id}:{self.trigger_id} @ {when} ({self.status})"


class FlowGate(models.Model):
    """One row per flow, locked (SELECT ... FOR UPDATE) to admit executions
    under the flow's concurrency limit one at a time, and holding the
    webhook token bucket of the flow."""

    namespace = models.CharField(max_length=255)
    flow_id = models.CharField(max_length=255)
    webhook_tokens = models.FloatField(null=True, blank=True)
    webhook_refilled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "flow_id"], name="flow_gate_unique"
            )
        ]

    def __str__(self) -> str:
        return f"gate {self.namespace}.{self.flow_id}"


class ServiceBeat(models.Model):
    """When a periodic service last did its round (``scheduler``: the beat's
    liveness sweep); shown by /api/health."""

    name = models.CharField(max_length=64, unique=True)
    at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} {self.at:%H:%M:%S}"
