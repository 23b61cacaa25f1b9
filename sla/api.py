"""REST endpoints for SLA rules and misses (``/api/sla/...``).

Rules are validated by the same form as the pages (sla/forms.py); who may
read or change them is decided by accounts.roles, as everywhere else.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from accounts import roles
from orchestra.lib.labels import EXAMPLE, SYNTAX, LabelError, parse_labels
from sla.forms import MissFilterForm, SlaRuleForm
from sla.models import SlaRule
from sla.presenters import miss_as_dict, rule_as_dict
from sla.rules import rules_for_flow
from sla.views import get_rule_for_user, visible_misses, visible_rules

# API name → form field.
FIELDS = {
    "name": "name",
    "namespace": "namespace",
    "flowId": "flow_id",
    "labels": "labels",
    "slo": "slo",
    "sla": "sla",
    "expectedRuns": "expected_runs",
    "expectedCron": "expected_cron",
    "timezone": "tz",
    "recipients": "recipients",
    "onBreach": "on_breach",
    "addLabels": "add_labels",
    "enabled": "enabled",
}
API_NAME = {form: api for api, form in FIELDS.items()}
MAX_LIMIT = 500


def _error(
    message: str, code: int = status.HTTP_400_BAD_REQUEST, **extra: Any
) -> Response:
    return Response({"detail": message, **extra}, status=code)


def _form_data(body: Any, rule: SlaRule | None) -> tuple[dict | None, Response | None]:
    if not isinstance(body, dict):
        return None, _error("send a JSON object with the rule's fields")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        return None, _error(
            f"unknown field(s): {', '.join(unknown)}; fields are {', '.join(FIELDS)}"
        )
    current = (
        {}
        if rule is None
        else {k: v for k, v in rule_as_dict(rule).items() if k in FIELDS}
    )
    merged = {**current, **body}
    data: dict[str, Any] = {}
    for api, value in merged.items():
        if value is None:
            continue
        if api == "recipients" and isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        if api == "enabled":
            if not isinstance(value, bool):
                return None, _error(
                    "enabled must be true or false",
                    errors={"enabled": ["must be true or false"]},
                )
            if not value:
                continue  # an unchecked checkbox: absent
        data[FIELDS[api]] = value
    data.setdefault("tz", "UTC")
    data.setdefault("on_breach", "NONE")
    if rule is None and "enabled" not in body:
        data["enabled"] = True
    return data, None


def _save(request, rule: SlaRule | None) -> Response:
    data, problem = _form_data(request.data, rule)
    if problem:
        return problem
    old_namespace = rule.namespace if rule else None
    form = SlaRuleForm(data=data, instance=rule)
    if form.is_valid():
        for ns in filter(None, {form.cleaned_data["namespace"], old_namespace}):
            if not roles.has_role(request.user, ns, roles.EDITOR):
                return _error(
                    f"you need the editor role on namespace {ns!r}",
                    status.HTTP_403_FORBIDDEN,
                )
        with transaction.atomic():
            saved = form.save(commit=False)
            saved.updated_at = timezone.now()
            saved.save()
        return Response(
            rule_as_dict(saved),
            status=status.HTTP_200_OK if rule else status.HTTP_201_CREATED,
        )
    errors = {
        API_NAME.get(k, "rule" if k == "__all__" else k): v
        for k, v in form.errors.items()
    }
    return _error("invalid SLA rule", errors=errors)


@api_view(["GET", "POST"])
def rules(request):
    """List the rules you may see, or create one (editor role on its namespace)."""
    if request.method == "POST":
        return _save(request, None)
    return Response([rule_as_dict(r) for r in visible_rules(request.user)])


@api_view(["GET", "PUT", "PATCH", "DELETE"])
def rule(request, pk: int):
    """One rule; PUT/PATCH change the fields sent, DELETE removes it (past misses stay)."""
    need = roles.EDITOR if request.method == "DELETE" else roles.VIEWER
    found = get_rule_for_user(request, pk, need, hide=True)
    if request.method == "GET":
        return Response(rule_as_dict(found))
    if request.method == "DELETE":
        found.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
    return _save(request, found)


@api_view(["GET"])
def applying(request):
    """The rule that applies to runs of ``?namespace=&flow=`` carrying
    ``?labels=k:v,k2:v2`` (repeatable; none: a run without labels), null if
    none, and every candidate rule with what it does for such runs."""
    namespace = request.query_params.get("namespace", "").strip()
    flow = request.query_params.get("flow", "").strip()
    if not namespace or not flow:
        return _error("give both ?namespace= and ?flow=")
    try:
        given = request.query_params.getlist("labels")
        # None (not given): say which rules would need labels; {} is "none".
        labels = parse_labels(given) if given else None
    except LabelError as exc:
        return _error(f"labels: {exc}; write them as {SYNTAX}, e.g. {EXAMPLE}")
    if not roles.has_role(request.user, namespace):
        return _error(
            f"you need the viewer role on namespace {namespace!r}",
            status.HTTP_403_FORBIDDEN,
        )
    candidates = rules_for_flow(namespace, flow, labels)
    found = next((c.rule for c in candidates if c.status == "applies"), None)
    return Response(
        {
            "namespace": namespace,
            "flowId": flow,
            "labels": labels or {},
            "rule": rule_as_dict(found) if found else None,
            "candidates": [
                {"rule": rule_as_dict(c.rule), "status": c.status} for c in candidates
            ],
        }
    )


@api_view(["GET"])
def misses(request):
    """Misses, newest first: ?namespace, flow, level, since, until (dates), rule;
    keyset pages with ?before=<id>&limit=N (the ``next`` link)."""
    form = MissFilterForm(request.query_params)
    if not form.is_valid():
        return _error("invalid filter", errors=form.errors)
    try:
        limit = int(request.query_params.get("limit", 50))
        before = request.query_params.get("before")
        before = int(before) if before else None
    except ValueError:
        return _error("limit and before must be whole numbers")
    if not 1 <= limit <= MAX_LIMIT:
        return _error(f"limit must be between 1 and {MAX_LIMIT}")
    qs = form.filter(visible_misses(request.user)).select_related("rule")
    if before:
        qs = qs.filter(pk__lt=before)
    page = list(qs.order_by("-id")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    next_url = None
    if more:
        query = request.query_params.copy()
        query["before"] = page[-1].pk
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return Response({"results": [miss_as_dict(m) for m in page], "next": next_url})
