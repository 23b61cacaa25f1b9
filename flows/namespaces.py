"""What a flow's namespace may reach, and the namespace settings that decide it.

A flow reaches its own namespace and every namespace below it. Any other
namespace must allow it: its ``allowed_namespaces`` (or a parent's) lists a
prefix covering the caller, or ``*``. ``can_reach`` is the one rule; Lookup,
Count, Subflow, ForEachItem, Flow triggers and ``read()`` all ask it, at run
time through the engine and at save time for targets written out literally.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from flows.models import Namespace, NamespaceChange, namespace_and_parents

NAMESPACE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*")
MAX_ALLOWED = 100


class NamespaceUnreachable(ValueError):
    """A flow tried to reach a namespace that does not allow it."""


class SettingError(ValueError):
    """A namespace setting that cannot be saved; the message says why."""


def within(prefix: str, namespace: str) -> bool:
    """True when ``namespace`` is ``prefix`` or below it."""
    return namespace == prefix or namespace.startswith(prefix + ".")


def _allowed_by(target: str) -> list[str]:
    """Entries of ``allowed_namespaces`` on ``target`` and its parents."""
    entries: list[str] = []
    for allowed in Namespace.objects.filter(
        name__in=namespace_and_parents(target)
    ).values_list("allowed_namespaces", flat=True):
        entries.extend(str(e) for e in allowed or [])
    return entries


def system_namespace() -> str:
    """Kestra's "system flows" namespace: its flows (the seed's SLA check,
    housekeeping) reach every namespace, so a role on it is instance-wide
    power. ``ORCHESTRA_SYSTEM_NAMESPACE``; empty turns it off."""
    return getattr(settings, "ORCHESTRA_SYSTEM_NAMESPACE", "system")


def can_reach(caller_ns: str, target_ns: str) -> bool:
    """May a flow of ``caller_ns`` reach ``target_ns``?"""
    caller_ns, target_ns = str(caller_ns), str(target_ns)
    if within(caller_ns, target_ns):
        return True
    system = system_namespace()
    if system and within(system, caller_ns):
        return True
    return any(e == "*" or within(e, caller_ns) for e in _allowed_by(target_ns))


def check_reach(caller_ns: str, caller_flow: str, target_ns: str) -> None:
    """NamespaceUnreachable, worded for the flow's author, unless allowed."""
    if not can_reach(caller_ns, target_ns):
        raise NamespaceUnreachable(refusal(caller_ns, caller_flow, target_ns))


def refusal(caller_ns: str, caller_flow: str, target_ns: str) -> str:
    return (
        f"flow {caller_ns}.{caller_flow} may not reach namespace {target_ns}: "
        f"{target_ns} does not allow {caller_ns} (allowed namespaces; an admin of "
        f"{target_ns} can add it)"
    )


def reachable_q(caller_ns: str, field: str = "namespace") -> Q:
    """Rows whose ``field`` names a namespace ``caller_ns`` may reach: its
    own subtree and the subtrees of namespaces that allow it."""
    system = system_namespace()
    if system and within(system, caller_ns):
        return Q()
    q = Q(**{field: caller_ns}) | Q(**{f"{field}__startswith": caller_ns + "."})
    for name, allowed in Namespace.objects.exclude(allowed_namespaces=[]).values_list(
        "name", "allowed_namespaces"
    ):
        if any(str(e) == "*" or within(str(e), caller_ns) for e in allowed or []):
            q |= Q(**{field: name}) | Q(**{f"{field}__startswith": name + "."})
    return q


# --- the setting -----------------------------------------------------------------
def clean_allowed(entries: Iterable[object]) -> list[str]:
    """The entries as stored (sorted, unique) or SettingError naming the bad one."""
    if isinstance(entries, str) or not isinstance(entries, Iterable):
        raise SettingError("allowed namespaces must be a list of namespace names")
    cleaned: set[str] = set()
    for entry in entries:
        if not isinstance(entry, str):
            raise SettingError(
                f"allowed namespaces: {entry!r} is not a namespace name (a string)"
            )
        entry = entry.strip()
        if not entry:
            continue
        if entry != "*" and (len(entry) > 255 or not NAMESPACE_RE.fullmatch(entry)):
            raise SettingError(
                f"allowed namespaces: {entry[:80]!r} is not a namespace name "
                "(dotted words of letters, digits, '_' and '-', or * for all)"
            )
        cleaned.add(entry)
    if len(cleaned) > MAX_ALLOWED:
        raise SettingError(f"allowed namespaces: at most {MAX_ALLOWED} entries")
    return sorted(cleaned)


def check_namespace_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > 255 or not NAMESPACE_RE.fullmatch(name):
        raise SettingError(f"{str(name)[:80]!r} is not a namespace name")
    return name


def clean_reason(reason: object) -> str:
    """Why a change was made, as stored: text of at most 1000 characters."""
    if reason is None:
        return ""
    if not isinstance(reason, str) or len(reason) > 1000 or "\x00" in reason:
        raise SettingError("reason: text of at most 1000 characters")
    try:
        reason.encode("utf-8")
    except UnicodeEncodeError:
        raise SettingError("reason: text of at most 1000 characters") from None
    return reason


def record(
    namespace: str, action: str, detail: dict, actor: str, via: str, reason: str
) -> NamespaceChange:
    return NamespaceChange.objects.create(
        namespace=namespace,
        action=action,
        detail=detail,
        actor=actor,
        via=via,
        reason=reason or "",
    )


@transaction.atomic
def set_allowed_namespaces(
    namespace: str, entries: Iterable[object], *, actor: str, via: str, reason: str
) -> list[str]:
    """Replace ``namespace``'s allowed namespaces; audited. The caller checked
    that ``actor`` is an admin of ``namespace``."""
    check_namespace_name(namespace)
    cleaned = clean_allowed(entries)
    for name in namespace_and_parents(namespace):
        Namespace.objects.get_or_create(name=name)
    row = Namespace.objects.select_for_update().get(name=namespace)
    before = list(row.allowed_namespaces or [])
    if before != cleaned:
        row.allowed_namespaces = cleaned
        row.save(update_fields=["allowed_namespaces"])
        record(
            namespace,
            "allowed_namespaces.set",
            {"before": before, "after": cleaned},
            actor,
            via,
            reason,
        )
    return cleaned


def allowed_namespaces(namespace: str) -> list[str]:
    row = Namespace.objects.filter(name=namespace).only("allowed_namespaces").first()
    return list(row.allowed_namespaces or []) if row else []


def changes(namespace: str, limit: int = 50) -> list[NamespaceChange]:
    return list(NamespaceChange.objects.filter(namespace=namespace)[:limit])


# --- at save time ------------------------------------------------------------------
SUBFLOW_TYPES = (
    "io.kestra.plugin.core.flow.Subflow",
    "io.kestra.plugin.core.flow.ForEachItem",
)
LOOKUP_TYPES = ("io.kestra.plugin.core.execution.Lookup",)
COUNT_TYPES = ("io.kestra.plugin.core.execution.Count",)


def _literal(value: object) -> str | None:
    if isinstance(value, str) and value and "{{" not in value and "{%" not in value:
        return value
    return None


def static_targets(spec) -> list[tuple[str, str]]:
    """(where, namespace) for every namespace the flow names literally as a
    target: Subflow/ForEachItem, Lookup, Count, Flow trigger conditions."""
    found: list[tuple[str, str]] = []
    for node in spec.all_tasks():
        raw = node.raw or {}
        name = node.type.name
        if name in SUBFLOW_TYPES or name in LOOKUP_TYPES:
            ns = _literal(raw.get("namespace"))
            if ns:
                found.append((f"{node.path} ({node.id})", ns))
        elif name in COUNT_TYPES:
            for item in raw.get("flows") or []:
                ns = _literal(item.get("namespace")) if isinstance(item, dict) else None
                if ns:
                    found.append((f"{node.path} ({node.id})", ns))
            for item in raw.get("namespaces") or []:
                ns = _literal(item)
                if ns:
                    found.append((f"{node.path} ({node.id})", ns))
    for trigger in spec.triggers or []:
        conditions = [
            *(trigger.get("conditions") or []),
            *((trigger.get("preconditions") or {}).get("flows") or []),
        ]
        for condition in conditions:
            ns = (
                _literal(condition.get("namespace"))
                if isinstance(condition, dict)
                else None
            )
            if ns:
                found.append((f"triggers ({trigger.get('id', '?')})", ns))
    return found


def reach_warnings(spec) -> list[str]:
    """Warnings for literal targets this flow may not reach (today's settings;
    the run checks again)."""
    warnings = []
    for where, target in static_targets(spec):
        if not can_reach(spec.namespace, target):
            warnings.append(f"{where}: {refusal(spec.namespace, spec.id, target)}")
    return warnings
