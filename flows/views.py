"""Dashboard pages for flows: list, detail (topology, triggers, revisions),
the YAML editor with validation as you type, and revision diffs."""

from __future__ import annotations

import difflib

from django.contrib import messages
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import roles
from flows.access import get_flow_for_user
from flows.models import Flow, delete_flow, save_flow
from flows.namespaces import reach_warnings
from flows.spec import FlowInvalid, parse_flow

NEW_FLOW = """id: my_flow
namespace: company.team

inputs:
  - id: name
    type: STRING
    defaults: World

tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{ inputs.name }}"
"""


@require_GET
def list_flows(request):
    qs = Flow.objects.live().filter(roles.namespace_q(request.user))
    namespace = request.GET.get("namespace", "").strip()
    if namespace:
        qs = qs.in_namespace(namespace)
    search = request.GET.get("q", "").strip()
    if search:
        qs = qs.filter(flow_id__icontains=search)
    return render(
        request,
        "flows/list.html",
        {
            "nav": "flows",
            "flows": qs.order_by("namespace", "flow_id")[:500],
            "namespace": namespace,
            "q": search,
            "can_create": roles.prefixes(request.user, roles.EDITOR) != [],
        },
    )


def _validate(user, source: str, flow: Flow | None = None) -> tuple[object, list]:
    """(spec or None, errors as dicts) — including the role and identity checks."""
    try:
        spec = parse_flow(source)
    except FlowInvalid as exc:
        return None, [e.as_dict() for e in exc.errors]
    problems = []
    if flow and (spec.namespace, spec.id) != (flow.namespace, flow.flow_id):
        problems.append(
            {
                "path": "id" if spec.namespace == flow.namespace else "namespace",
                "message": f"this editor saves {flow.namespace}.{flow.flow_id}; to make "
                f"{spec.namespace}.{spec.id}, use New flow",
                "line": None,
                "column": None,
            }
        )
    elif not roles.has_role(user, spec.namespace, roles.EDITOR):
        problems.append(
            {
                "path": "namespace",
                "message": f"you need the editor role on namespace {spec.namespace!r} to save here",
                "line": None,
                "column": None,
            }
        )
    return spec, problems


@require_POST
def validate_flow(request):
    """Validation as you type (htmx): errors with line and column, or OK."""
    source = request.POST.get("source", "")
    flow = None
    if request.POST.get("namespace") and request.POST.get("flow_id"):
        flow = (
            Flow.objects.live()
            .filter(
                roles.namespace_q(request.user),
                namespace=request.POST["namespace"],
                flow_id=request.POST["flow_id"],
            )
            .first()
        )
    spec, errors = _validate(request.user, source, flow)
    warnings = reach_warnings(spec) if spec is not None else []
    return render(
        request,
        "flows/editor.html#validation",
        {"errors": errors, "spec": spec, "warnings": warnings},
    )


@require_GET
def show_flow(request, namespace: str, flow_id: str):
    flow = get_flow_for_user(request, namespace, flow_id)
    revision = flow.latest
    return render(
        request,
        "flows/detail.html",
        {
            "nav": "flows",
            "flow": flow,
            "revision": revision,
            "spec": revision.spec,
            "revisions": flow.revisions.order_by("-revision")[:100],
            "can_edit": roles.has_role(request.user, namespace, roles.EDITOR),
            "can_execute": roles.has_role(request.user, namespace, roles.OPERATOR),
            "schedules": [
                t["id"] for t in revision.spec.triggers if t["kind"] == "schedule"
            ],
        },
    )


def _editor(request, flow: Flow | None, source: str, errors=None, status: int = 200):
    return render(
        request,
        "flows/editor.html",
        {
            "nav": "flows",
            "flow": flow,
            "source": source,
            "errors": errors or [],
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
def edit_flow(request, namespace: str | None = None, flow_id: str | None = None):
    """Edit an existing flow (or create one): saving a changed source makes a new revision."""
    flow = None
    if namespace is not None:
        flow = get_flow_for_user(request, namespace, flow_id, roles.EDITOR)
    elif roles.prefixes(request.user, roles.EDITOR) == []:
        roles.require(request.user, "", roles.EDITOR)
    if request.method == "GET":
        return _editor(request, flow, flow.latest.source if flow else NEW_FLOW)
    source = request.POST.get("source", "")
    spec, errors = _validate(request.user, source, flow)
    if errors:
        return _editor(request, flow, source, errors, status=400)
    if (
        flow is None
        and Flow.objects.live()
        .filter(namespace=spec.namespace, flow_id=spec.id)
        .exists()
    ):
        return _editor(
            request,
            flow,
            source,
            [
                {
                    "path": "id",
                    "line": None,
                    "column": None,
                    "message": f"flow {spec.namespace}.{spec.id} already exists; edit it instead",
                }
            ],
            status=400,
        )
    saved, revision, created = save_flow(source, actor=request.user.get_username())
    if created:
        messages.success(request, f"Saved {saved} as revision {revision.revision}.")
    else:
        messages.info(
            request, "No change: the source is the same as the latest revision."
        )
    return redirect("flows:show", namespace=saved.namespace, flow_id=saved.flow_id)


@require_POST
def remove_flow(request, namespace: str, flow_id: str):
    flow = get_flow_for_user(request, namespace, flow_id, roles.EDITOR)
    delete_flow(flow, actor=request.user.get_username())
    messages.success(request, f"Deleted flow {flow}. Its executions are kept.")
    return redirect("flows:list")


@require_GET
def diff_revisions(request, namespace: str, flow_id: str):
    flow = get_flow_for_user(request, namespace, flow_id)
    try:
        new = int(request.GET.get("b", flow.revision))
        old = int(request.GET.get("a", new - 1))
    except ValueError:
        return HttpResponseBadRequest("a and b must be revision numbers")
    sources = dict(
        flow.revisions.filter(revision__in=[old, new]).values_list("revision", "source")
    )
    if old not in sources or new not in sources:
        raise Http404(f"{flow} has revisions 1 to {flow.revision}")
    lines = list(
        difflib.unified_diff(
            sources[old].splitlines(),
            sources[new].splitlines(),
            fromfile=f"revision {old}",
            tofile=f"revision {new}",
            lineterm="",
        )
    )
    return render(
        request,
        "flows/diff.html",
        {
            "nav": "flows",
            "flow": flow,
            "old": old,
            "new": new,
            "lines": lines,
            "revisions": range(flow.revision, 0, -1),
        },
    )
