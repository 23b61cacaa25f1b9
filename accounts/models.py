"""Who may do what: roles per namespace prefix, and API tokens.

A role on ``company`` covers ``company`` and every namespace below it
(``company.team``, ``company.team.etl``); an empty prefix covers all
namespaces. Roles are ordered: each one can do what the ones before it can.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class RoleName(models.TextChoices):
    VIEWER = "viewer", "Viewer: read flows, executions and logs"
    OPERATOR = "operator", "Operator: also execute, kill, restart, resume, clean up"
    EDITOR = "editor", "Editor: also create, edit and delete flows and SLA rules"
    ADMIN = "admin", "Admin: everything in the namespace, including roles"


ROLE_RANK = {
    RoleName.VIEWER: 1,
    RoleName.OPERATOR: 2,
    RoleName.EDITOR: 3,
    RoleName.ADMIN: 4,
}


class Role(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="roles"
    )
    namespace = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="Namespace prefix; empty means every namespace.",
    )
    role = models.CharField(max_length=16, choices=RoleName.choices)
    granted_at = models.DateTimeField(default=timezone.now)
    granted_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "namespace"], name="role_one_per_prefix"
            ),
        ]
        ordering = ["user_id", "namespace"]

    def __str__(self) -> str:
        return f"{self.user} {self.role} on {self.namespace or '*'}"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 is stored; the key is shown once."""

    PREFIX = "orc_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    hint = models.CharField(
        max_length=16, help_text="First characters of the key, to tell tokens apart."
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…) of {self.user}"

    @classmethod
    def issue(cls, user, name: str, expires_at=None) -> tuple[ApiToken, str]:
        key = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name,
            digest=_digest(key),
            hint=key[:10],
            expires_at=expires_at,
        )
        return token, key

    @classmethod
    def lookup(cls, key: str) -> ApiToken | None:
        token = (
            cls.objects.select_related("user")
            .filter(digest=_digest(key), revoked_at__isnull=True)
            .first()
        )
        if token is None or not token.user.is_active:
            return None
        if token.expires_at and token.expires_at <= timezone.now():
            return None
        return token

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not (
            self.expires_at and self.expires_at <= timezone.now()
        )
