"""REST endpoints for SLA rules and misses (``/api/sla/...``).

Rules are validated by the same form as the pages (sla/forms.py); who may
read or change them is decided by accounts.roles, as everywhere else.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from accounts import roles
from orchestra.lib.labels import EXAMPLE, SYNTAX, LabelError, parse_labels
from orchestra.lib.shapes import shaped
from sla.forms import MissFilterForm, SlaRuleForm
from sla.models import SlaRule
from sla.presenters import miss_as_dict, rule_as_dict
from sla.rules import rules_for_flow
from sla.serializers import ApplyingOut, MissPageOut, RuleIn, RuleOut
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
    typed = RuleIn(data=body)
    typed.is_valid(raise_exception=True)  # JSON types; the form checks the rule
    body = dict(typed.validated_data)
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
            shaped(RuleOut, rule_as_dict(saved)),
            status=status.HTTP_200_OK if rule else status.HTTP_201_CREATED,
        )
    errors = {
        API_NAME.get(k, "rule" if k == "__all__" else k): v
        for k, v in form.errors.items()
    }
    return _error("invalid SLA rule", errors=errors)


RULE_ERRORS = {400: None}


@extend_schema(
    methods=["GET"], summary="SLA rules you may see", responses=RuleOut(many=True)
)
@extend_schema(
    methods=["POST"],
    summary="Create an SLA rule (editor on its namespace)",
    request=RuleIn,
    responses={201: RuleOut, **RULE_ERRORS},
)
@api_view(["GET", "POST"])
def rules(request):
    """List the rules you may see, or create one (editor role on its namespace)."""
    if request.method == "POST":
        return _save(request, None)
    return Response(
        shaped(
            RuleOut, [rule_as_dict(r) for r in visible_rules(request.user)], many=True
        )
    )


@extend_schema(
    methods=["GET"],
    summary="One SLA rule",
    operation_id="sla_rule_get",
    responses=RuleOut,
)
@extend_schema(
    methods=["PUT", "PATCH"],
    summary="Change the fields sent of an SLA rule (editor)",
    request=RuleIn,
    responses={200: RuleOut, **RULE_ERRORS},
)
@extend_schema(
    methods=["DELETE"],
    summary="Delete an SLA rule; its past misses stay (editor)",
    request=None,
    responses={204: None},
)
@api_view(["GET", "PUT", "PATCH", "DELETE"])
def rule(request, pk: int):
    """One rule; PUT/PATCH change the fields sent, DELETE removes it (past misses stay)."""
    need = roles.EDITOR if request.method == "DELETE" else roles.VIEWER
    found = get_rule_for_user(request, pk, need)
    if request.method == "GET":
        return Response(shaped(RuleOut, rule_as_dict(found)))
    if request.method == "DELETE":
        found.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
    return _save(request, found)


@extend_schema(
    summary="The SLA rule that applies to a flow",
    parameters=[
        OpenApiParameter("namespace", str, required=True),
        OpenApiParameter("flow", str, required=True, description="flow id"),
    ],
    responses={200: ApplyingOut, 403: None},
)
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
        shaped(
            ApplyingOut,
            {
                "namespace": namespace,
                "flowId": flow,
                "labels": labels or {},
                "rule": rule_as_dict(found) if found else None,
                "candidates": [
                    {"rule": rule_as_dict(c.rule), "status": c.status}
                    for c in candidates
                ],
            },
        )
    )


@extend_schema(
    summary="SLA misses you may see, newest first",
    parameters=[
        OpenApiParameter("namespace", str, description="includes children"),
        OpenApiParameter("flow", str, description="flow id"),
        OpenApiParameter("level", str, description="SLO or SLA"),
        OpenApiParameter("since", str, description="date (YYYY-MM-DD)"),
        OpenApiParameter("until", str, description="date (YYYY-MM-DD)"),
        OpenApiParameter("rule", int, description="rule id"),
        OpenApiParameter("before", int, description="keyset: ids below this"),
        OpenApiParameter("limit", int, description=f"1 to {MAX_LIMIT} (default 50)"),
    ],
    responses=MissPageOut,
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
    return Response(
        shaped(
            MissPageOut, {"results": [miss_as_dict(m) for m in page], "next": next_url}
        )
    )
