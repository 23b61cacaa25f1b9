"""REST endpoints for executions: search, get, logs, follow (SSE), actions, bulk, execute.

The same filterset, bulk module and actions as the pages. A user sees only
executions in namespaces they hold a role on; others' answer 404.

Just over 500 lines: one module per interface, the endpoints sharing one
access helper; each endpoint is a thin call into ``executions.lifecycle``.
"""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.http import Http404, QueryDict, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes, renderer_classes
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from accounts import roles, streams
from executions import storage
from executions.access import get_execution_for_user
from executions.filters import (
    ExecutionFilterSet,
    filter_executions,
    keyset_page,
)
from executions.lifecycle import bulk
from executions.lifecycle.actor import Actor
from executions.lifecycle.delete import delete_execution
from executions.lifecycle.replay import replay
from executions.lifecycle.restart import restart
from executions.lifecycle.resume import resume
from executions.lifecycle.start import create_execution
from executions.lifecycle.stop import kill
from executions.models import Execution, LogEntry
from executions.presenters import execution_as_dict, log_as_dict
from executions.serializers import (
    BulkIn,
    BulkOut,
    ExecuteIn,
    ExecutionDetailOut,
    ExecutionOut,
    ExecutionPageOut,
    LogOut,
    LogPageOut,
    ReasonIn,
    ReplayIn,
    ResumeIn,
)
from flows.access import get_flow_for_user
from orchestra.lib import levels
from orchestra.lib.parsers import FORM_PARSERS
from orchestra.lib.shapes import shaped

MAX_PAGE = 100


def _int_param(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(
            {name: f"must be an integer from {low} to {high}"}
        ) from None
    if not low <= value <= high:
        raise ValidationError({name: f"must be from {low} to {high}"})
    return value


def _filter_parameters() -> list[OpenApiParameter]:
    """The filterset's fields as OpenAPI query parameters (one definition)."""
    params = []
    for name, field in ExecutionFilterSet.base_filters.items():
        kind = {
            "id": int,
            "after": OpenApiTypes.DATETIME,
            "before": OpenApiTypes.DATETIME,
        }.get(name, str)
        choices = [c[0] for c in field.extra.get("choices", [])] or None
        params.append(
            OpenApiParameter(
                name,
                kind,
                many=name in ("state", "labels"),
                enum=choices,
                description=str(field.extra.get("help_text", "")),
            )
        )
    return params


SEARCH_PARAMETERS = [
    *_filter_parameters(),
    OpenApiParameter("cursor", str, description="'next_cursor' of the previous page"),
    OpenApiParameter(
        "size", int, description=f"rows per page, 1 to {MAX_PAGE} (default 25)"
    ),
]


@extend_schema(
    summary="Search executions (the dashboard's filters), newest first",
    operation_id="executions_search",
    parameters=SEARCH_PARAMETERS,
    responses=ExecutionPageOut,
)
@api_view(["GET"])
def search_executions(request):
    size = _int_param(request, "size", 25, 1, MAX_PAGE)
    filterset = filter_executions(request.user, request.query_params)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    page = keyset_page(filterset.qs, request.query_params.get("cursor"), size)
    next_url = None
    if page.next_cursor:
        params = request.query_params.copy()
        params["cursor"] = page.next_cursor
        next_url = request.build_absolute_uri(request.path) + "?" + params.urlencode()
    return Response(
        shaped(
            ExecutionPageOut,
            {
                "results": [execution_as_dict(e, taskruns=False) for e in page.rows],
                "next": next_url,
                "next_cursor": page.next_cursor,
            },
        )
    )


@extend_schema(
    methods=["GET"],
    summary="One execution with its task runs",
    operation_id="executions_get",
    responses=ExecutionDetailOut,
)
@extend_schema(
    methods=["DELETE"],
    summary="Delete an ended execution (editor)",
    operation_id="executions_delete",
    request=None,
    responses={204: None, 409: None},
)
@api_view(["GET", "DELETE"])
def execution_detail(request, pk: int):
    if request.method == "DELETE":
        execution = get_execution_for_user(request, pk, roles.EDITOR)
        delete_execution(
            execution.pk,
            reason="deleted through the API",
            actor=Actor.from_request(request, "api"),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
    execution = get_execution_for_user(request, pk)
    return Response(shaped(ExecutionDetailOut, execution_as_dict(execution)))


def _levels(request) -> list[str] | None:
    level = request.query_params.get("level") or ""
    if not level:
        return None
    try:
        return levels.at_least(level)
    except ValueError as exc:
        raise ValidationError({"level": str(exc)}) from None


@extend_schema(
    summary="Log lines of an execution, oldest first",
    parameters=[
        OpenApiParameter("after", int, description="only lines with a larger id"),
        OpenApiParameter("level", str, enum=levels.LEVELS, description="minimum level"),
        OpenApiParameter("task", str, description="only this task id"),
        OpenApiParameter("size", int, description="1 to 5000 (default 1000)"),
    ],
    responses=LogPageOut,
)
@api_view(["GET"])
def execution_logs(request, pk: int):
    execution = get_execution_for_user(request, pk)
    after = _int_param(request, "after", 0, 0, 2**63 - 1)
    size = _int_param(request, "size", 1000, 1, 5000)
    qs = LogEntry.objects.filter(execution=execution, id__gt=after)
    wanted = _levels(request)
    if wanted:
        qs = qs.filter(level__in=wanted)
    if request.query_params.get("task"):
        qs = qs.filter(task_id=request.query_params["task"])
    rows = list(qs.order_by("id")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Response(
        shaped(
            LogPageOut,
            {
                "results": [log_as_dict(r) for r in rows],
                "last_id": rows[-1].pk if rows else after,
                "more": more,
            },
        )
    )


def _sse(event: str, data, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def follow_events(
    execution_id: int,
    after: int = 0,
    *,
    seconds: float | None = None,
    poll: float | None = None,
):
    """Server-sent events: ``state`` when the execution changes, ``log`` per line,
    then ``end`` once it is over (or ``timeout``; reconnect with Last-Event-ID)."""
    seconds = settings.ORCHESTRA_SSE_SECONDS if seconds is None else seconds
    poll = settings.ORCHESTRA_SSE_POLL_SECONDS if poll is None else poll
    deadline = time.monotonic() + seconds
    last_seen = None
    last_beat = time.monotonic()
    # EventSource reconnects this long after the stream ends (with
    # Last-Event-ID), so a bounded stream still follows to the end.
    yield f"retry: {RECONNECT_MS}\n\n"
    while True:
        execution = Execution.objects.filter(pk=execution_id).first()
        if execution is None:
            yield _sse("end", {"detail": f"execution {execution_id} was deleted"})
            return
        fingerprint = (execution.state, execution.progress_at)
        if fingerprint != last_seen:
            last_seen = fingerprint
            yield _sse(
                "state", shaped(ExecutionDetailOut, execution_as_dict(execution))
            )
        lines = list(
            LogEntry.objects.filter(execution_id=execution_id, id__gt=after).order_by(
                "id"
            )[:500]
        )
        for line in lines:
            yield _sse("log", shaped(LogOut, log_as_dict(line)), line.pk)
            after = line.pk
        if execution.is_terminal and len(lines) < 500:
            yield _sse("end", {"id": execution.pk, "state": execution.state})
            return
        if time.monotonic() >= deadline:
            yield _sse(
                "timeout", {"detail": "reconnect to keep following", "after": after}
            )
            return
        if time.monotonic() - last_beat > 15:
            last_beat = time.monotonic()
            yield ": keep-alive\n\n"
        if not lines:
            time.sleep(poll)


RECONNECT_MS = 3000


def _leased(events, lease):
    """Stream ``events``; the lease ends with the stream, also when the client
    goes away (the server closes the generator then)."""
    try:
        yield from events
    finally:
        streams.close_lease(lease)


@extend_schema(
    summary="Follow an execution and its logs live (text/event-stream)",
    description="Events: 'state' (the execution as in GET), 'log' (one line; its id is the "
    "event id), 'end' when the execution is over, 'timeout' when the connection's time is up. "
    "Send Last-Event-ID (or ?after=) to resume after a log line. A follow lasts at most "
    "ORCHESTRA_SSE_SECONDS (EventSource reconnects by itself); a user may have "
    "ORCHESTRA_SSE_PER_USER follows open at once, more are answered 429.",
    parameters=[
        OpenApiParameter("after", int, description="resume after this log line id")
    ],
    responses={(200, "text/event-stream"): OpenApiTypes.STR, 429: OpenApiTypes.OBJECT},
)
@api_view(["GET"])
def follow_execution(request, pk: int):
    execution = get_execution_for_user(request, pk)
    after = (
        request.headers.get("Last-Event-ID") or request.query_params.get("after") or "0"
    )
    try:
        after_id = max(int(after), 0)
    except ValueError:
        raise ValidationError({"after": "must be a log line id (an integer)"}) from None
    seconds = settings.ORCHESTRA_SSE_SECONDS
    try:
        lease = streams.open_lease(request.user, seconds)
    except streams.TooManyStreams as exc:
        return Response(
            {"detail": str(exc)},
            status=429,
            headers={"Retry-After": str(int(min(seconds, 60)))},
        )
    response = StreamingHttpResponse(
        _leased(follow_events(execution.pk, after_id, seconds=seconds), lease),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class AnyMediaRenderer(BaseRenderer):
    """Lets a download be asked for with any Accept header. A download is the
    file's own response (its type set there); what this renders is only ever
    an error, and an error is JSON whatever was accepted."""

    media_type = "*/*"
    format = "file"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = "application/json"
        return json.dumps(data).encode() if data is not None else b""


@extend_schema(
    summary="Download a file of an execution (task output, FILE input)",
    description="'path' is a kestra:/// URI as found in the execution's inputs or task "
    "outputs. Only the execution's own files (and files given to it) are served, to "
    "users who may view the namespace that owns them: other paths answer 404, "
    "malformed ones 400.",
    parameters=[
        OpenApiParameter(
            "path", str, required=True, description="kestra:///... URI of the file"
        )
    ],
    responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
)
@api_view(["GET"])
@renderer_classes([JSONRenderer, AnyMediaRenderer])
def execution_file(request, pk: int):
    execution = get_execution_for_user(request, pk)
    uri = request.query_params.get("path", "")
    if not uri:
        raise ValidationError({"path": "required: the kestra:/// URI of a file"})
    try:
        download = storage.open_download(
            execution, uri, lambda ns: roles.has_role(request.user, ns)
        )
    except storage.BadStorageURI as exc:
        raise ValidationError({"path": str(exc)}) from None
    except storage.StorageError as exc:
        raise Http404(str(exc)) from None
    return download.response()


# --- actions -------------------------------------------------------------------
def _act(request, pk: int, body_class, verb, done: str, **answer) -> Response:
    """One execution's verb: the operator role, a valid body, the verb with
    the caller as the actor (via api); the answer is the execution after."""
    execution = get_execution_for_user(request, pk, roles.OPERATOR)
    body = body_class(data=request.data)
    body.is_valid(raise_exception=True)
    data = dict(body.validated_data)
    result = verb(
        execution.pk,
        actor=Actor.from_request(request, "api"),
        reason=data.pop("reason", "") or f"{done} through the API",
        **data,
    )
    return Response(shaped(ExecutionDetailOut, execution_as_dict(result)), **answer)


@extend_schema(
    summary="Kill a running execution (operator)",
    request=ReasonIn,
    responses={200: ExecutionDetailOut, 409: None},
)
@api_view(["POST"])
def kill_execution(request, pk: int):
    return _act(request, pk, ReasonIn, kill, "killed")


@extend_schema(
    summary="Restart a failed, killed or cancelled execution (operator)",
    request=ReasonIn,
    responses={200: ExecutionDetailOut, 409: None},
)
@api_view(["POST"])
def restart_execution(request, pk: int):
    return _act(request, pk, ReasonIn, restart, "restarted")


@extend_schema(
    summary="Replay an execution as a new one, optionally from a task (operator)",
    request=ReplayIn,
    responses={201: ExecutionDetailOut, 409: None},
)
@api_view(["POST"])
def replay_execution(request, pk: int):
    return _act(
        request, pk, ReplayIn, replay, "replayed", status=status.HTTP_201_CREATED
    )


@extend_schema(
    summary="Resume a paused execution (operator)",
    request=ResumeIn,
    responses={200: ExecutionDetailOut, 409: None},
)
@api_view(["POST"])
def resume_execution(request, pk: int):
    return _act(request, pk, ResumeIn, resume, "resumed")


@extend_schema(
    summary="Kill, restart or delete many executions (by ids or by search filters)",
    description="With dry_run the answer lists what would happen and nothing changes. "
    f"At most {bulk.MAX_BULK} executions per call. Each one is re-checked; those that "
    "cannot be acted on are listed in 'skipped' with the reason.",
    request=BulkIn,
    responses=BulkOut,
)
@api_view(["POST"])
def bulk_executions(request):
    body = BulkIn(data=request.data)
    body.is_valid(raise_exception=True)
    data = body.validated_data
    action = bulk.get_action(data["action"])
    if "query" in data:
        params = QueryDict(mutable=True)
        for key, value in data["query"].items():
            for item in value if isinstance(value, list) else [value]:
                params.appendlist(key, str(item))
        filterset = filter_executions(request.user, params)
        if not filterset.is_valid():
            raise ValidationError({"query": filterset.errors})
        plan = bulk.preview(request.user, action.name, filterset.qs)
    else:
        plan = bulk.preview_ids(request.user, action.name, data["ids"])
    if data["dry_run"]:
        found = {row.execution.pk for row in plan.rows}
        missing = [pk for pk in data.get("ids", []) if pk not in found]
        return Response(
            shaped(
                BulkOut,
                {
                    "action": action.name,
                    "dry_run": True,
                    "count": len(plan.acting),
                    "execution_ids": [r.execution.pk for r in plan.acting],
                    "skipped": [
                        {"id": r.execution.pk, "reason": r.refusal}
                        for r in plan.skipped
                    ]
                    + [{"id": pk, "reason": "not found"} for pk in missing],
                    "message": f"would {action.name} {len(plan.acting)} execution(s)"
                    + (
                        f", {len(plan.skipped) + len(missing)} skipped"
                        if plan.skipped or missing
                        else ""
                    ),
                },
            ),
        )
    ids = [r.execution.pk for r in plan.rows] + [
        pk
        for pk in data.get("ids", [])
        if pk not in {r.execution.pk for r in plan.rows}
    ]
    result = bulk.apply(
        Actor.from_request(request, "api"),
        action.name,
        ids,
        reason=data["reason"] or f"bulk {action.name} through the API",
    )
    return Response(shaped(BulkOut, {**result.as_dict(), "dry_run": False}))


# --- execute -------------------------------------------------------------------
RESERVED = {"labels"}


@extend_schema(
    summary="Execute a flow (operator): inputs, files and labels",
    description='JSON: {"inputs": {...}, "labels": {...}}. Multipart form: each field is '
    "an input (files for FILE inputs), 'labels' repeated as key:value.",
    request={"application/json": ExecuteIn, "multipart/form-data": OpenApiTypes.OBJECT},
    responses={201: ExecutionOut},
)
@extend_schema(methods=["GET"], exclude=True)
@api_view(["POST", "GET"])
@parser_classes(FORM_PARSERS)
def execute_flow(request, namespace: str, flow_id: str):
    if request.method == "GET":
        # /api/executions/<x>/logs with an <x> that is no execution id lands
        # here (the route of executing flow <x>.logs): say what is missing.
        raise Http404(f"no execution {namespace}")
    flow = get_flow_for_user(request, namespace, flow_id, roles.OPERATOR)
    with storage.uploads_discarded_on_error():
        execution = _execute(request, flow, namespace, flow_id)
    return Response(
        shaped(ExecutionOut, execution_as_dict(execution, taskruns=False)),
        status=status.HTTP_201_CREATED,
    )


def _execute(request, flow, namespace: str, flow_id: str):
    if request.content_type.startswith(
        ("multipart/", "application/x-www-form-urlencoded")
    ):
        inputs = {
            k: request.data.get(k)
            for k in request.data
            if k not in RESERVED and k not in request.FILES
        }
        for name, upload in request.FILES.items():
            inputs[name] = storage.save_input_file(
                namespace, flow_id, upload.name, upload.read()
            )
        body = ExecuteIn(
            data={
                "inputs": inputs,
                **(
                    {"labels": request.data.getlist("labels")}
                    if "labels" in request.data
                    else {}
                ),
            }
        )
        body.is_valid(raise_exception=True)
        labels = body.validated_data["labels"]
    else:
        body = ExecuteIn(data=request.data)
        body.is_valid(raise_exception=True)
        inputs, labels = body.validated_data["inputs"], body.validated_data["labels"]
    return create_execution(
        flow.latest,
        inputs=inputs,
        labels=labels,
        trigger={"type": "api", "user": request.user.get_username()},
        actor=Actor.from_request(request, "api"),
    )
