"""Every change to an account, each with its audit row.

The CLI, the account pages and the login throttle call these; none changes a
user, role or token by itself, so every change is in ``AccountEvent`` with
who made it, through which interface, and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.utils import timezone

from accounts.models import AccountAction, AccountEvent, ApiToken, Role
from orchestra.lib.users import os_username


@dataclass(frozen=True)
class Who:
    """Who changes an account: a name and the interface ("web", "cli", ...)."""

    name: str
    via: str

    @classmethod
    def from_request(cls, request, via: str = "web") -> Who:
        return cls(request.user.get_username(), via)

    @classmethod
    def cli(cls) -> Who:
        return cls(os_username(), "cli")


def record(who: Who, user, action: str, detail: str = "", reason: str = "") -> None:
    AccountEvent.objects.create(
        actor=who.name[:150],
        via=who.via,
        user=user if user is not None and user.pk else None,
        username=user.get_username() if user is not None else "",
        action=action,
        detail=detail[:300],
        reason=reason[:300],
    )


@transaction.atomic
def create_user(
    who: Who,
    username: str,
    password: str,
    *,
    email: str = "",
    superuser: bool = False,
    roles: list[tuple[str, str]] = (),
    reason: str = "",
):
    """Create a user; ``password`` must pass AUTH_PASSWORD_VALIDATORS
    (ValidationError otherwise, nothing created)."""
    User = get_user_model()
    validate_password(password, User(username=username, email=email))
    if superuser:
        user = User.objects.create_superuser(username, email, password)
    else:
        user = User.objects.create_user(username, email, password)
    record(
        who,
        user,
        AccountAction.USER_CREATED,
        "superuser" if superuser else "",
        reason,
    )
    for role, namespace in roles:
        grant_role(who, user, role, namespace, reason=reason)
    return user


@transaction.atomic
def set_password(who: Who, user, password: str, reason: str = "") -> None:
    """Change a password after the validators accepted it."""
    validate_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    record(who, user, AccountAction.PASSWORD_CHANGED, reason=reason)


@transaction.atomic
def grant_role(who: Who, user, role: str, namespace: str, reason: str = "") -> Role:
    old = Role.objects.filter(user=user, namespace=namespace).first()
    granted, _ = Role.objects.update_or_create(
        user=user,
        namespace=namespace,
        defaults={"role": role, "granted_by": who.name, "granted_at": timezone.now()},
    )
    where = namespace or "all namespaces"
    detail = f"{role} on {where}" + (f" (was {old.role})" if old else "")
    record(who, user, AccountAction.ROLE_GRANTED, detail, reason)
    return granted


@transaction.atomic
def revoke_role(who: Who, user, namespace: str, reason: str = "") -> bool:
    role = Role.objects.filter(user=user, namespace=namespace).first()
    if role is None:
        return False
    role.delete()
    detail = f"{role.role} on {namespace or 'all namespaces'}"
    record(who, user, AccountAction.ROLE_REVOKED, detail, reason)
    return True


@transaction.atomic
def issue_token(
    who: Who, user, name: str, expires_at: datetime | None = None, reason: str = ""
) -> tuple[ApiToken, str]:
    token, key = ApiToken.issue(user, name, expires_at=expires_at)
    detail = f"{name!r} ({token.hint}…), expires {token.expires_at:%Y-%m-%d}"
    record(who, user, AccountAction.TOKEN_CREATED, detail, reason)
    return token, key


@transaction.atomic
def revoke_token(who: Who, token: ApiToken, reason: str = "") -> bool:
    """Revoke once; False when it already was (nothing recorded twice)."""
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if changed:
        detail = f"{token.name!r} ({token.hint}…)"
        record(who, token.user, AccountAction.TOKEN_REVOKED, detail, reason)
    return bool(changed)
