"""The one place that answers "may this user do that in this namespace?".

Pages, the REST API, bulk actions and the CLI all ask here, so a rule holds
everywhere or nowhere. Superusers may do everything.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404

from accounts.models import ROLE_RANK, Role, RoleName

VIEWER, OPERATOR, EDITOR, ADMIN = (
    RoleName.VIEWER,
    RoleName.OPERATOR,
    RoleName.EDITOR,
    RoleName.ADMIN,
)


def covers(prefix: str, namespace: str) -> bool:
    """True when a role on ``prefix`` applies to ``namespace``."""
    return not prefix or namespace == prefix or namespace.startswith(prefix + ".")


def _grants(user) -> list[tuple[str, int]]:
    """(prefix, rank) pairs of the user, cached on the user object per request."""
    cached = getattr(user, "_orchestra_grants", None)
    if cached is None:
        cached = [
            (r.namespace, ROLE_RANK[r.role])
            for r in Role.objects.filter(user_id=user.pk)
        ]
        user._orchestra_grants = cached
    return cached


def forget(user) -> None:
    user.__dict__.pop("_orchestra_grants", None)


def _everything(user) -> bool:
    return bool(user and user.is_active and user.is_superuser)


def has_role(user, namespace: str, role: str = VIEWER) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if _everything(user):
        return True
    need = ROLE_RANK[role]
    return any(
        rank >= need and covers(prefix, namespace) for prefix, rank in _grants(user)
    )


def require(user, namespace: str, role: str = VIEWER) -> None:
    """Raise PermissionDenied with a message that says what is missing."""
    if not has_role(user, namespace, role):
        raise PermissionDenied(f"you need the {role} role on namespace {namespace!r}")


def require_visible(
    user, namespace: str | None, role: str = VIEWER, *, missing: str = "not found"
) -> None:
    """The one rule for reaching an object in ``namespace`` (None: there is no
    such object): Http404 when it is missing *or* the user may not see its
    namespace, so an outsider cannot tell which ids exist; PermissionDenied
    (403) naming the role when they see it but lack ``role``. Pages and the
    REST API answer through this helper alike."""
    if namespace is None or not has_role(user, namespace, VIEWER):
        raise Http404(missing)
    require(user, namespace, role)


def prefixes(user, role: str = VIEWER) -> list[str] | None:
    """Namespace prefixes the user holds ``role`` on; None means all namespaces."""
    if _everything(user):
        return None
    if user is None or not user.is_authenticated:
        return []
    need = ROLE_RANK[role]
    found = [prefix for prefix, rank in _grants(user) if rank >= need]
    if "" in found:
        return None
    return sorted(set(found))


def namespace_q(user, role: str = VIEWER, field: str = "namespace") -> Q:
    """A filter keeping only rows whose ``field`` names a namespace the user may see.

    ``field`` is the lookup path of a namespace *string* (``"namespace"`` on
    Execution, ``"namespace__name"`` on Flow). Uses equality and LIKE 'p.%',
    which the namespace indexes serve.
    """
    allowed = prefixes(user, role)
    if allowed is None:
        return Q()
    q = Q(pk__in=[])
    for prefix in allowed:
        q |= Q(**{field: prefix}) | Q(**{f"{field}__startswith": prefix + "."})
    return q


def visible(user, namespaces: Iterable[str], role: str = VIEWER) -> list[str]:
    return [ns for ns in namespaces if has_role(user, ns, role)]
