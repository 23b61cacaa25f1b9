"""Who may do what: roles per namespace prefix, and API tokens.

A role on ``company`` covers ``company`` and every namespace below it
(``company.team``, ``company.team.etl``); an empty prefix covers all
namespaces. Roles are ordered: each one can do what the ones before it can.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

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
        """A new token; it expires ORCHESTRA_TOKEN_DAYS from now unless told."""
        if expires_at is None:
            expires_at = timezone.now() + timedelta(days=settings.ORCHESTRA_TOKEN_DAYS)
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
        token, problem = cls.verify(key)
        return None if problem else token

    @classmethod
    def verify(cls, key: str) -> tuple[ApiToken | None, str]:
        """The token of ``key`` and "" when it may be used, else why not.

        Only the holder of the key learns that it expired or was revoked;
        a wrong key says nothing about other tokens.
        """
        token = cls.objects.select_related("user").filter(digest=_digest(key)).first()
        if token is None:
            return None, "invalid API token"
        if token.revoked_at:
            return token, (
                f"API token {token.name!r} was revoked on "
                f"{token.revoked_at:%Y-%m-%d %H:%M} UTC"
            )
        if token.expires_at and token.expires_at <= timezone.now():
            return token, (
                f"API token {token.name!r} expired on "
                f"{token.expires_at:%Y-%m-%d %H:%M} UTC; create a new one on "
                "your account's tokens page (/account/tokens/)"
            )
        if not token.user.is_active:
            return token, "the user of this API token is deactivated"
        return token, ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not (
            self.expires_at and self.expires_at <= timezone.now()
        )


class AccountAction(models.TextChoices):
    USER_CREATED = "user_created", "user created"
    PASSWORD_CHANGED = "password_changed", "password changed"
    ROLE_GRANTED = "role_granted", "role granted"
    ROLE_REVOKED = "role_revoked", "role revoked"
    TOKEN_CREATED = "token_created", "API token created"
    TOKEN_REVOKED = "token_revoked", "API token revoked"
    LOCKED_OUT = "locked_out", "login locked out"


class AccountEvent(models.Model):
    """One change to an account: who did it, through what, to whom, and why.

    The audit trail of accounts, as StateChange is for executions. Rows are
    never changed; a deleted user keeps their history (``username``).
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, help_text="Who made the change.")
    via = models.CharField(max_length=16, help_text="web, api, cli or system.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="account_events",
    )
    username = models.CharField(max_length=150, help_text="The account changed.")
    action = models.CharField(max_length=32, choices=AccountAction.choices)
    detail = models.CharField(max_length=300, blank=True, default="")
    reason = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "-id"], name="account_event_user")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} via {self.via}: {self.get_action_display()} {self.username}"


class StreamLease(models.Model):
    """One open live follow (server-sent events) of a user.

    Rows are shared by every web process, so the per-user and global caps
    hold across gunicorn workers; a row outlives a crashed process only until
    ``expires_at`` (a stream never lives longer).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    opened_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"stream of {self.user_id} until {self.expires_at}"
