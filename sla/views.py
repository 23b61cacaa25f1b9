"""SLA pages: rules (list, create, edit, delete), misses, compliance, digest preview.

Thin views: the form validates, accounts.roles decides who may do what, and
the same functions serve the REST API (sla/api.py) and the CLI.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.db.models import Q
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import roles
from executions.access import get_execution_for_user
from flows.models import Flow
from flows.spec import FlowInvalid
from orchestra.lib.labels import LabelError, parse_labels
from sla import digest, report
from sla.forms import MissFilterForm, SlaRuleForm
from sla.models import SlaMiss, SlaRule
from sla.rules import (
    applying_rule,
    expected_run_rules,
    flow_thresholds,
    rules_for_flow,
)

PAGE = 50


def visible_rules(user):
    return SlaRule.objects.filter(roles.namespace_q(user))


def visible_misses(user):
    return SlaMiss.objects.filter(roles.namespace_q(user)).with_current_state()


def get_rule_for_user(request, pk: int, role: str = roles.VIEWER) -> SlaRule:
    """The rule for this user: 404 when it is missing or in a namespace they
    cannot see (pages and API alike), 403 when they see it but lack ``role``."""
    rule = SlaRule.objects.filter(pk=pk).first()
    roles.require_visible(
        request.user, rule.namespace if rule else None, role, missing=f"no rule {pk}"
    )
    return rule


def check_editor(form: SlaRuleForm, user, old_namespace: str | None = None) -> bool:
    """Adds a form error (not a 403) when the user may not put a rule there."""
    namespace = form.cleaned_data.get("namespace")
    for ns in filter(None, {namespace, old_namespace}):
        if not roles.has_role(user, ns, roles.EDITOR):
            form.add_error(
                "namespace",
                f"you need the editor role on namespace '{ns}' to manage its SLA rules",
            )
            return False
    return True


@require_GET
def rule_list(request):
    rules = visible_rules(request.user)
    namespace = request.GET.get("namespace", "").strip()
    flow = request.GET.get("flow", "").strip()
    applies = None
    if namespace and flow:
        allowed = roles.has_role(request.user, namespace)
        try:
            raw = request.GET.get("labels", "")
            labels = parse_labels(raw) if raw.strip() else None
        except LabelError as exc:
            return HttpResponseBadRequest(f"labels: {exc}")
        applies = {
            "namespace": namespace,
            "flow": flow,
            "labels": labels,
            "allowed": allowed,
            "rule": applying_rule(namespace, flow, labels) if allowed else None,
            "expected": expected_run_rules(namespace, flow) if allowed else [],
        }
    template = "sla/rules.html"
    if request.htmx and applies is not None:
        template += "#applies"
    return render(
        request,
        template,
        {
            "nav": "sla",
            "rules": rules,
            "applies": applies,
            "can_edit": roles.prefixes(request.user, roles.EDITOR) != [],
        },
    )


def _warn_if_no_such_flow(request, rule: SlaRule) -> None:
    """A rule for a flow id that no flow of its namespaces has is kept (the
    flow may come later) but said, since it is most often a typo."""
    if not rule.flow_id:
        return
    ns = rule.namespace
    flows = Flow.objects.live().filter(flow_id=rule.flow_id)
    if ns:
        flows = flows.filter(Q(namespace=ns) | Q(namespace__startswith=ns + "."))
    if not flows.exists():
        messages.warning(
            request,
            f"No flow '{rule.flow_id}' exists in {ns or 'any namespace'} yet: the "
            "rule applies once one is deployed (check the flow id for a typo).",
        )


@require_http_methods(["GET", "POST"])
def rule_create(request):
    form = SlaRuleForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid() and check_editor(form, request.user):
            rule = form.save()
            messages.success(
                request, f"SLA rule '{rule.name}' created for {rule.scope}."
            )
            _warn_if_no_such_flow(request, rule)
            return redirect("sla:rules")
        return render(
            request, "sla/rule_form.html", {"nav": "sla", "form": form}, status=400
        )
    return render(request, "sla/rule_form.html", {"nav": "sla", "form": form})


@require_http_methods(["GET", "POST"])
def rule_edit(request, pk: int):
    rule = get_rule_for_user(request, pk, roles.EDITOR)
    old_namespace = rule.namespace
    form = SlaRuleForm(request.POST or None, instance=rule)
    context = {"nav": "sla", "form": form, "rule": rule}
    if request.method == "POST":
        if form.is_valid() and check_editor(form, request.user, old_namespace):
            rule = form.save(commit=False)
            rule.updated_at = timezone.now()
            rule.save()
            messages.success(request, f"SLA rule '{rule.name}' saved.")
            _warn_if_no_such_flow(request, rule)
            return redirect("sla:rules")
        return render(request, "sla/rule_form.html", context, status=400)
    return render(request, "sla/rule_form.html", context)


@require_POST
def rule_validate(request):
    """Inline validation while the user types: the form fragment with its errors."""
    instance = None
    if request.POST.get("rule_id"):
        instance = get_rule_for_user(
            request, int(request.POST["rule_id"]), roles.EDITOR
        )
    form = SlaRuleForm(request.POST, instance=instance)
    if form.is_valid():
        check_editor(form, request.user, instance.namespace if instance else None)
    return render(
        request, "sla/rule_form.html#fields", {"form": form, "rule": instance}
    )


@require_http_methods(["GET", "POST"])
def rule_delete(request, pk: int):
    rule = get_rule_for_user(request, pk, roles.EDITOR)
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        name = rule.name
        rule.delete()
        messages.success(
            request, f"SLA rule '{name}' deleted; its past misses are kept."
        )
        return redirect("sla:rules")
    return render(
        request,
        "sla/rule_confirm_delete.html",
        {
            "nav": "sla",
            "rule": rule,
            "misses": rule.misses.count(),
            "open_deadlines": rule.deadlines.filter(state="open").count(),
        },
    )


@require_GET
def miss_list(request):
    form = MissFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest(f"invalid filter: {form.errors.as_text()}")
    misses = form.filter(visible_misses(request.user)).select_related(
        "rule", "execution"
    )
    before = request.GET.get("before", "")
    if before.isdigit():
        misses = misses.filter(pk__lt=int(before))  # keyset pagination, newest first
    page = list(misses.order_by("-id")[: PAGE + 1])
    more = len(page) > PAGE
    page = page[:PAGE]
    query = request.GET.copy()
    query.pop("before", None)
    if more:
        query["before"] = page[-1].pk
    template = "sla/misses.html" + ("#rows" if request.htmx else "")
    return render(
        request,
        template,
        {
            "nav": "sla",
            "form": form,
            "misses": page,
            "next_query": query.urlencode() if more else "",
        },
    )


@require_GET
def compliance(request):
    rows = report.compliance(
        timezone.now(), roles.namespace_q(request.user, field="execution__namespace")
    )
    return render(
        request,
        "sla/compliance.html",
        {"nav": "sla", "rows": rows, "periods": report.PERIODS},
    )


@require_GET
def digest_preview(request):
    """What the next sweep would email, limited to namespaces the user may see."""
    emails = digest.preview(timezone.now(), scope=roles.namespace_q(request.user))
    return render(
        request,
        "sla/digest_preview.html",
        {
            "nav": "sla",
            "emails": emails,
            "reminder_minutes": settings.ORCHESTRA_SLA_REMINDER_MINUTES,
        },
    )


@require_GET
def flow_sla(request, namespace: str, flow_id: str):
    """What judges a flow's executions: the rules covering it (which one
    wins) and the flow's own thresholds. Loaded into the flow page by htmx."""
    roles.require_visible(
        request.user, namespace, missing=f"no flow {namespace}.{flow_id}"
    )
    flow = Flow.objects.filter(namespace=namespace, flow_id=flow_id).first()
    try:
        own = flow_thresholds(flow.latest.spec) if flow else []
    except FlowInvalid:
        own = []
    return render(
        request,
        "sla/_flow_sla.html",
        {
            "namespace": namespace,
            "flow_id": flow_id,
            "candidates": rules_for_flow(namespace, flow_id),
            "own": own,
            "expected": expected_run_rules(namespace, flow_id),
        },
    )


@require_GET
def execution_sla(request, pk: int):
    """An execution's SLA: the thresholds it got (per attempt), their
    deadlines and its misses. Loaded into the execution page by htmx."""
    execution = get_execution_for_user(request, pk)
    deadlines = list(
        execution.sla_deadlines.select_related("rule").order_by(
            "-attempt", "level", "key"
        )
    )
    return render(
        request,
        "sla/_execution_sla.html",
        {
            "execution": execution,
            "rules": list({d.rule_id: d.rule for d in deadlines if d.rule}.values()),
            "deadlines": deadlines,
            "misses": execution.sla_misses.select_related("rule").order_by("id"),
        },
    )
