"""Dashboard page of a namespace's trust settings: allowed namespaces and secrets.

Editors see the page (names only); admins change it. Secret values go in
through a password field and never come back: the page lists names, where
each is inherited from, and who changed it when.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts import roles
from flows import namespaces, secrets
from orchestra.lib.secrets import SecretError


def _checked(request, namespace: str, role: str):
    try:
        namespaces.check_namespace_name(namespace)
    except namespaces.SettingError as exc:
        return HttpResponseBadRequest(str(exc))
    if not roles.has_role(request.user, namespace, role):
        raise PermissionDenied(f"you need the {role} role on namespace {namespace!r}")
    return None


def _reason(request) -> str:
    reason = request.POST.get("reason", "").replace("\x00", "")[:1000]
    return reason.encode("utf-8", "replace").decode("utf-8")


@require_GET
def namespace_settings(request, namespace: str):
    bad = _checked(request, namespace, roles.EDITOR)
    if bad:
        return bad
    return render(
        request,
        "flows/namespace_settings.html",
        {
            "nav": "namespaces",
            "namespace": namespace,
            "allowed": namespaces.allowed_namespaces(namespace),
            "secrets": secrets.list_secrets(namespace),
            "changes": namespaces.changes(namespace, limit=20),
            "is_admin": roles.has_role(request.user, namespace, roles.ADMIN),
        },
    )


def _done(namespace: str):
    return redirect("flows:namespace-settings", namespace=namespace)


@require_POST
def set_allowed(request, namespace: str):
    bad = _checked(request, namespace, roles.ADMIN)
    if bad:
        return bad
    entries = request.POST.get("allowed_namespaces", "").replace(",", "\n").split()
    try:
        allowed = namespaces.set_allowed_namespaces(
            namespace,
            entries,
            actor=request.user.get_username(),
            via="web",
            reason=_reason(request),
        )
    except namespaces.SettingError as exc:
        return HttpResponseBadRequest(str(exc))
    messages.success(
        request,
        f"{namespace} allows: {', '.join(allowed) or 'none (own subtree only)'}",
    )
    return _done(namespace)


@require_POST
def set_secret(request, namespace: str):
    bad = _checked(request, namespace, roles.ADMIN)
    if bad:
        return bad
    try:
        row, created = secrets.set_secret(
            namespace,
            request.POST.get("name", "").strip(),
            request.POST.get("value", ""),
            actor=request.user.get_username(),
            via="web",
            reason=_reason(request),
        )
    except SecretError as exc:
        return HttpResponseBadRequest(str(exc))
    messages.success(
        request, f"Secret {row.name} {'created' if created else 'replaced'}."
    )
    return _done(namespace)


@require_POST
def delete_secret(request, namespace: str, name: str):
    bad = _checked(request, namespace, roles.ADMIN)
    if bad:
        return bad
    try:
        secrets.delete_secret(
            namespace,
            name,
            actor=request.user.get_username(),
            via="web",
            reason=_reason(request),
        )
    except SecretError as exc:
        return HttpResponseBadRequest(str(exc))
    messages.success(request, f"Secret {name} deleted.")
    return _done(namespace)
