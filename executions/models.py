"""Executions, task runs, logs, state history and workers."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


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
    {State.SUCCESS, State.WARNING, State.FAILED, State.KILLED, State.CANCELLED, State.SKIPPED}
)
ACTIVE = frozenset(
    {State.CREATED, State.QUEUED, State.RUNNING, State.PAUSED, State.RETRYING,
     State.RESTARTED, State.KILLING}
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
            return self.filter(Q(namespace=prefix) | Q(namespace__startswith=prefix + "."))
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


class Execution(models.Model):
    namespace = models.CharField(max_length=255)
    flow_id = models.CharField(max_length=255)
    flow_revision = models.ForeignKey(
        "flows.FlowRevision", null=True, blank=True, on_delete=models.PROTECT,
        related_name="executions",
    )
    revision = models.PositiveIntegerField(default=0)
    # Flow YAML for runs not pinned to a stored revision (``orchestra flows test``).
    source = models.TextField(blank=True, default="")
    state = models.CharField(max_length=16, choices=State.choices, default=State.CREATED)
    # Where a KILLING execution ends: KILLED (kill) or CANCELLED (cancel, cleanup).
    stop_state = models.CharField(max_length=16, blank=True, default="")
    inputs = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    variables = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    trigger = models.JSONField(default=dict, blank=True)
    trigger_id = models.CharField(max_length=255, blank=True, default="")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    parent_taskrun_id = models.BigIntegerField(null=True, blank=True)
    original = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays"
    )
    error = models.TextField(blank=True, default="")
    attempt = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Last sign of life: a state change of the execution or one of its task runs,
    # or a log line. Stuck detection reads this column.
    progress_at = models.DateTimeField(default=timezone.now)

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["namespace", "flow_id", "-created_at"], name="ex_ns_flow_created"),
            models.Index(fields=["-created_at"], name="ex_created"),
            models.Index(fields=["state", "-created_at"], name="ex_state_created"),
            models.Index(fields=["trigger_id"], name="ex_trigger", condition=~Q(trigger_id="")),
            models.Index(
                fields=["progress_at"], name="ex_active_progress",
                condition=Q(state__in=["CREATED", "QUEUED", "RUNNING", "PAUSED", "RETRYING",
                                       "RESTARTED", "KILLING"]),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.namespace}.{self.flow_id} {self.state}"

    def get_absolute_url(self) -> str:
        return f"/executions/{self.pk}/"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    def duration(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.ended_at or timezone.now()) - self.started_at

    @property
    def spec(self):
        from flows.models import spec_for_source

        if self.flow_revision_id:
            return self.flow_revision.spec
        return spec_for_source(self.source)


class TaskRun(models.Model):
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="taskruns")
    task_id = models.CharField(max_length=255)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    # Loop iteration value (text, JSON for structures); empty outside loops.
    value = models.TextField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CREATED)
    flowable = models.BooleanField(default=False)
    outputs = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    worker = models.ForeignKey(
        "Worker", null=True, blank=True, on_delete=models.SET_NULL, related_name="taskruns"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Earliest start: retries wait for their delay.
    scheduled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["execution", "task_id"], name="tr_execution_task"),
            models.Index(
                fields=["worker"], name="tr_running_worker", condition=Q(state="RUNNING")
            ),
            models.Index(
                fields=["created_at"], name="tr_created_waiting", condition=Q(state="CREATED")
            ),
            # Pauses due to end by themselves (the wake-up sweep).
            models.Index(
                fields=["scheduled_at"], name="tr_paused_wake", condition=Q(state="PAUSED")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} #{self.pk} {self.state}"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    def duration(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.ended_at or timezone.now()) - self.started_at

    @property
    def celery_id(self) -> str:
        """Deterministic Celery task id, so a queued message can be revoked."""
        return f"orchestra-taskrun-{self.pk}"


class LogEntry(models.Model):
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="logs")
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

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="history")
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
                fields=["-at"], name="sc_people_sweeps",
                condition=Q(taskrun__isnull=True)
                & Q(cause__in=["user", "api", "cli", "sweep", "sla"]),
            ),
        ]

    def __str__(self) -> str:
        what = f"task run {self.taskrun_id}" if self.taskrun_id else f"execution {self.execution_id}"
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
    state = models.CharField(max_length=8, choices=WorkerState.choices, default=WorkerState.ALIVE)
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat_at = models.DateTimeField(default=timezone.now)
    dead_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_heartbeat_at"]
        indexes = [
            models.Index(
                fields=["last_heartbeat_at"], name="worker_alive_beat",
                condition=Q(state="alive"),
            )
        ]

    def __str__(self) -> str:
        return self.name
