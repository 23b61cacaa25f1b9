"""Namespace secrets: stored encrypted, resolved nearest namespace first.

``secret('NAME')`` in a flow of ``a.b.c`` reads the secret ``NAME`` of
``a.b.c``, else of ``a.b``, else of ``a``, else the global secret of the
environment (orchestra/lib/secrets.py). Values are written and replaced,
never read back by any interface: pages, API and CLI list names, update time
and author only. Every change is a NamespaceChange row.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flows.expressions import SecretScope
from flows.models import NamespaceSecret, namespace_and_parents
from flows.namespaces import check_namespace_name, record
from orchestra.lib import secrets as lib

MAX_VALUE = 64 * 1024


class SecretNotFound(lib.SecretError):
    pass


def _box():
    return lib.fernet(
        local_mode=getattr(settings, "ORCHESTRA_LOCAL_MODE", False),
        home=settings.ORCHESTRA_HOME,
    )


def resolve(namespace: str, name: str) -> str:
    """The value ``secret(name)`` has in a flow of ``namespace``."""
    name = lib.check_name(name)
    rows = {
        ns: token
        for ns, token in NamespaceSecret.objects.filter(
            namespace__in=namespace_and_parents(namespace), name=name
        ).values_list("namespace", "ciphertext")
    }
    for ns in reversed(namespace_and_parents(namespace)):
        if ns in rows:
            value = lib.decrypt(_box(), rows[ns])
            lib.remember(value)
            return value
    value = lib.read_global(name)
    if value is not None:
        return value
    raise SecretNotFound(
        f"secret({name!r}) is not set for namespace {namespace}: an admin of the "
        f"namespace adds it (orchestra secrets set --namespace {namespace} {name}), "
        f"or the operator marks SECRET_{name} global ({lib.GLOBAL_LIST})"
    )


def scope(namespace: str) -> SecretScope:
    """What an expression context holds under SECRETS_KEY so that
    ``secret()`` resolves in ``namespace``."""
    return SecretScope(namespace, resolve)


def clean_value(value: object) -> str:
    if not isinstance(value, str):
        raise lib.SecretError("a secret value must be text")
    if value == "":
        raise lib.SecretError("a secret value cannot be empty")
    if "\x00" in value:
        raise lib.SecretError("a secret value cannot contain NUL bytes")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise lib.SecretError("a secret value must be valid Unicode text") from None
    if size > MAX_VALUE:
        raise lib.SecretError(f"a secret value is at most {MAX_VALUE} bytes")
    if len(value) < lib.MIN_MASKED:
        raise lib.SecretError(
            f"a secret value has at least {lib.MIN_MASKED} characters (shorter ones "
            "cannot be masked in logs)"
        )
    return value


@transaction.atomic
def set_secret(
    namespace: str, name: str, value: str, *, actor: str, via: str, reason: str = ""
) -> tuple[NamespaceSecret, bool]:
    """Create or replace; returns (row, created). The caller checked the role."""
    check_namespace_name(namespace)
    name = lib.check_name(name)
    value = clean_value(value)
    token = lib.encrypt(_box(), value)
    row, created = NamespaceSecret.objects.update_or_create(
        namespace=namespace,
        name=name,
        defaults={
            "ciphertext": token,
            "updated_at": timezone.now(),
            "updated_by": actor,
        },
    )
    lib.remember(value)
    record(
        namespace,
        "secret.create" if created else "secret.replace",
        {"name": name},
        actor,
        via,
        reason,
    )
    return row, created


@transaction.atomic
def delete_secret(
    namespace: str, name: str, *, actor: str, via: str, reason: str = ""
) -> None:
    name = lib.check_name(name)
    deleted, _ = NamespaceSecret.objects.filter(namespace=namespace, name=name).delete()
    if not deleted:
        raise SecretNotFound(f"namespace {namespace} has no secret {name}")
    record(namespace, "secret.delete", {"name": name}, actor, via, reason)


def list_secrets(namespace: str) -> list[dict]:
    """Names of the secrets a flow of ``namespace`` sees, nearest first wins;
    never values."""
    rows = NamespaceSecret.objects.filter(
        namespace__in=namespace_and_parents(namespace)
    ).values("namespace", "name", "updated_at", "updated_by")
    found: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: len(r["namespace"])):
        found[row["name"]] = {
            "name": row["name"],
            "namespace": row["namespace"],
            "inherited": row["namespace"] != namespace,
            "updated_at": row["updated_at"],
            "updated_by": row["updated_by"],
        }
    return [found[k] for k in sorted(found)]


def stored_values() -> list[str]:
    """Every stored secret's value, for masking (orchestra/lib/secrets.py)."""
    # A savepoint: called from mask() inside other transactions, a failing
    # query (no table yet) must not break the caller's transaction.
    with transaction.atomic():
        tokens = list(NamespaceSecret.objects.values_list("ciphertext", flat=True))
    if not tokens:
        return []
    box = _box()
    values = []
    for token in tokens:
        try:
            values.append(lib.decrypt(box, token))
        except lib.SecretError:
            continue
    return values
