"""REST endpoints for flows: list, create, get, update, delete, validate, revisions.

Bodies are the flow YAML (``Content-Type: text/yaml``) or JSON
``{"source": "..."}``. Viewers read; editors write (on the flow's namespace).
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts import roles
from flows.access import get_flow_for_user
from flows.expressions import format_native
from flows.models import Flow, delete_flow, save_flow
from flows.namespaces import reach_warnings
from flows.serializers import FlowOut, FlowSourceIn, RevisionOut, ValidationOut
from flows.spec import FlowInvalid, parse_flow
from orchestra.lib.parsers import FLOW_PARSERS
from orchestra.lib.shapes import shaped

YAML_BODY = {"application/json": FlowSourceIn, "text/yaml": {"type": "string"}}


def flow_as_dict(flow: Flow, source: str | None = None) -> dict:
    data = {
        "namespace": flow.namespace,
        "id": flow.flow_id,
        "revision": flow.revision,
        "disabled": flow.disabled,
        "description": flow.description,
        "updated": format_native(flow.updated_at),
    }
    if source is not None:
        data["source"] = source
    return data


def _source(request) -> str:
    body = FlowSourceIn(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data["source"]


def _save(request, source: str, expect: tuple[str, str] | None = None):
    spec = parse_flow(source)  # FlowInvalid → 422 with line/column errors
    if expect and (spec.namespace, spec.id) != expect:
        raise ValidationError(
            {
                "source": [
                    f"the YAML says {spec.namespace}.{spec.id} but the URL names {expect[0]}.{expect[1]}; "
                    "a flow's namespace and id cannot change"
                ]
            }
        )
    roles.require(request.user, spec.namespace, roles.EDITOR)
    return save_flow(source, actor=request.user.get_username())


@extend_schema(
    methods=["GET"],
    summary="Flows you may see",
    parameters=[
        OpenApiParameter("namespace", str, description="includes children"),
        OpenApiParameter("q", str, description="flow id contains"),
    ],
    responses=FlowOut(many=True),
)
@extend_schema(
    methods=["POST"],
    summary="Create a flow (editor)",
    request=YAML_BODY,
    responses={201: FlowOut, 409: None, 422: None},
)
@api_view(["GET", "POST"])
@parser_classes(FLOW_PARSERS)
def flows(request):
    if request.method == "POST":
        source = _source(request)
        spec = parse_flow(source)
        roles.require(request.user, spec.namespace, roles.EDITOR)
        if (
            Flow.objects.live()
            .filter(namespace=spec.namespace, flow_id=spec.id)
            .exists()
        ):
            return Response(
                {
                    "detail": f"flow {spec.namespace}.{spec.id} already exists; "
                    f"PUT /api/flows/{spec.namespace}/{spec.id} to update it"
                },
                status=status.HTTP_409_CONFLICT,
            )
        flow, revision, _ = _save(request, source)
        return Response(
            shaped(FlowOut, flow_as_dict(flow, revision.source)),
            status=status.HTTP_201_CREATED,
        )
    qs = Flow.objects.live().filter(roles.namespace_q(request.user))
    if request.query_params.get("namespace"):
        qs = qs.in_namespace(request.query_params["namespace"])
    if request.query_params.get("q"):
        qs = qs.filter(flow_id__icontains=request.query_params["q"])
    rows = [flow_as_dict(f) for f in qs.order_by("namespace", "flow_id")[:1000]]
    return Response(shaped(FlowOut, rows, many=True))


@extend_schema(
    summary="Validate flow YAML without saving it",
    request=YAML_BODY,
    responses=ValidationOut,
)
@api_view(["POST"])
@parser_classes(FLOW_PARSERS)
def validate_flow(request):
    source = _source(request)
    try:
        spec = parse_flow(source)
    except FlowInvalid as exc:
        return Response(
            {
                "valid": False,
                "namespace": None,
                "id": None,
                "errors": [e.as_dict() for e in exc.errors],
            },
            # A document over the YAML budget is a refused request; a flow
            # with mistakes is a valid question with the answer "no".
            status=400 if exc.refused else 200,
        )
    return Response(
        {
            "valid": True,
            "namespace": spec.namespace,
            "id": spec.id,
            "errors": [],
            "warnings": [*spec.warnings, *reach_warnings(spec)],
        }
    )


@extend_schema(
    methods=["GET"],
    summary="A flow with its YAML",
    parameters=[OpenApiParameter("revision", int, description="an older revision")],
    responses=FlowOut,
)
@extend_schema(
    methods=["PUT"],
    summary="Update a flow: a changed source is a new revision (editor)",
    request=YAML_BODY,
    responses={200: FlowOut, 422: None},
)
@extend_schema(
    methods=["DELETE"],
    summary="Delete a flow; its executions stay (editor)",
    request=None,
    responses={204: None},
)
@api_view(["GET", "PUT", "DELETE"])
@parser_classes(FLOW_PARSERS)
def flow_detail(request, namespace: str, flow_id: str):
    if request.method == "PUT":
        get_flow_for_user(request, namespace, flow_id, roles.EDITOR)
        flow, revision, _ = _save(
            request, _source(request), expect=(namespace, flow_id)
        )
        return Response(shaped(FlowOut, flow_as_dict(flow, revision.source)))
    if request.method == "DELETE":
        flow = get_flow_for_user(request, namespace, flow_id, roles.EDITOR)
        delete_flow(flow, actor=request.user.get_username())
        return Response(status=status.HTTP_204_NO_CONTENT)
    flow = get_flow_for_user(request, namespace, flow_id)
    number = request.query_params.get("revision") or flow.revision
    try:
        number = int(number)
    except ValueError:
        raise ValidationError({"revision": "must be a revision number"}) from None
    revision = flow.revisions.filter(revision=number).first()
    if revision is None:
        raise Http404(f"{flow} has revisions 1 to {flow.revision}")
    return Response(
        shaped(
            FlowOut,
            {**flow_as_dict(flow, revision.source), "revision": revision.revision},
        )
    )


@extend_schema(
    summary="Revisions of a flow, newest first", responses=RevisionOut(many=True)
)
@api_view(["GET"])
def flow_revisions(request, namespace: str, flow_id: str):
    flow = get_flow_for_user(request, namespace, flow_id)
    return Response(
        [
            {
                "revision": r.revision,
                "created": format_native(r.created_at),
                "createdBy": r.created_by,
                "checksum": r.checksum,
            }
            for r in flow.revisions.order_by("-revision")
        ]
    )
