"""Namespaces, flows and their immutable revisions."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from django.db import models, transaction
from django.utils import timezone

from flows.signals import flow_saved
from flows.spec import FlowError, FlowInvalid, FlowSpec, parse_flow
from flows.triggers import WEBHOOK_KEY_ADVICE, short_webhook_key


def namespace_and_parents(name: str) -> list[str]:
    """``a.b.c`` → ``["a", "a.b", "a.b.c"]``."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


class NamespaceQuerySet(models.QuerySet):
    def under(self, prefix: str):
        return self.filter(
            models.Q(name=prefix) | models.Q(name__startswith=prefix + ".")
        )


class Namespace(models.Model):
    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Namespaces (prefixes; "*" for all) whose flows may reach this one and its
    # children through Lookup, Count, Subflow, ForEachItem and Flow triggers
    # (Kestra Enterprise's "allowed namespaces"); see flows/namespaces.py.
    allowed_namespaces = models.JSONField(default=list, blank=True)

    objects = NamespaceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NamespaceSecret(models.Model):
    """A secret of a namespace and its children, encrypted with Fernet
    (flows/secrets.py); the value is never shown back, only its name."""

    namespace = models.CharField(max_length=255)
    name = models.CharField(max_length=128)
    ciphertext = models.BinaryField()
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["namespace", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "name"], name="namespace_secret_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name}"


class NamespaceChange(models.Model):
    """Audit row of a change to a namespace's settings or secrets: who, via
    what, why. Never holds a secret value."""

    namespace = models.CharField(max_length=255, db_index=True)
    action = models.CharField(max_length=40)
    detail = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=150)
    via = models.CharField(max_length=16)
    reason = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.namespace} {self.action} by {self.actor} via {self.via}"


class FlowQuerySet(models.QuerySet):
    def live(self):
        return self.filter(deleted=False)

    def in_namespace(self, prefix: str, children: bool = True):
        if children:
            return self.filter(
                models.Q(namespace=prefix)
                | models.Q(namespace__startswith=prefix + ".")
            )
        return self.filter(namespace=prefix)


class Flow(models.Model):
    namespace = models.CharField(max_length=255, db_index=True)
    flow_id = models.CharField(max_length=255)
    revision = models.PositiveIntegerField(default=1)
    disabled = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = FlowQuerySet.as_manager()

    class Meta:
        ordering = ["namespace", "flow_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "flow_id"], name="flow_unique_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.namespace}.{self.flow_id}"

    @property
    def latest(self) -> FlowRevision:
        return self.revisions.get(revision=self.revision)


class FlowRevision(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="revisions")
    revision = models.PositiveIntegerField()
    source = models.TextField()
    checksum = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["flow", "-revision"]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "revision"], name="flow_revision_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.flow} rev {self.revision}"

    @property
    def spec(self) -> FlowSpec:
        return spec_for_source(self.source)


@lru_cache(maxsize=512)
def spec_for_source(source: str) -> FlowSpec:
    """Parsed specs are immutable, so revisions share one parse per process."""
    return parse_flow(source)


def checksum(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


@transaction.atomic
def save_flow(source: str, actor: str = "") -> tuple[Flow, FlowRevision, bool]:
    """Validate and store ``source``; a changed source becomes a new revision.

    Returns (flow, revision, created_new_revision). Raises FlowInvalid and
    stores nothing when the YAML is invalid.
    """
    spec = parse_flow(source)
    digest = checksum(source)
    for name in namespace_and_parents(spec.namespace):
        Namespace.objects.get_or_create(name=name)
    flow, created = Flow.objects.select_for_update().get_or_create(
        namespace=spec.namespace,
        flow_id=spec.id,
        defaults={"revision": 0, "description": spec.description},
    )
    current = None
    if not created and not flow.deleted:
        current = flow.revisions.filter(revision=flow.revision).first()
        if current and current.checksum == digest:
            return flow, current, False
    _refuse_new_short_keys(spec, current)
    flow.revision += 1
    flow.deleted = False
    flow.disabled = spec.disabled
    flow.description = spec.description
    flow.updated_at = timezone.now()
    flow.save()
    revision = FlowRevision.objects.create(
        flow=flow,
        revision=flow.revision,
        source=source,
        checksum=digest,
        created_by=actor,
    )

    flow_saved.send(sender=Flow, flow=flow, revision=revision, spec=spec)
    return flow, revision, True


def _refuse_new_short_keys(spec, current) -> None:
    """New webhook keys must be long (flows.triggers.MIN_WEBHOOK_KEY); a key
    the flow's current revision already had is kept, with a warning."""
    kept = set()
    if current is not None:
        kept = {t.get("key") for t in current.spec.triggers if t["kind"] == "webhook"}
    errors = [
        FlowError(f"triggers.{t['id']}.key", WEBHOOK_KEY_ADVICE)
        for t in spec.triggers
        if t["kind"] == "webhook"
        and short_webhook_key(t.get("key"))
        and t.get("key") not in kept
    ]
    if errors:
        raise FlowInvalid(errors)


@transaction.atomic
def delete_flow(flow: Flow, actor: str = "") -> Flow:
    """Hide a flow (its revisions and executions stay); saving it again revives it."""
    import logging

    Flow.objects.filter(pk=flow.pk).update(deleted=True, updated_at=timezone.now())
    flow.deleted = True
    logging.getLogger("orchestra.audit").info("flow %s deleted by %s", flow, actor)
    return flow
