"""Shared REST pieces: JSON errors (also for too-large bodies), the unknown-URL answer.

Every API error is JSON with a ``detail`` sentence a person can act on;
validation errors add ``errors`` (per field, or flow errors with line and
column).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from executions.filters import BadCursor
from executions.lifecycle.base import ActionError
from executions.lifecycle.machine import IllegalTransition, StaleState
from flows.spec import FlowInvalid
from flows.spec.inputs import InputError


def _json_error(message: str, code: int) -> JsonResponse:
    return JsonResponse({"detail": message}, status=code)


def _too_large() -> str:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return f"the request body is larger than the limit of {limit} bytes"


class APIBodyLimitMiddleware:
    """A body over the limit is answered 413 (JSON) before anything reads it.

    Django only enforces DATA_UPLOAD_MAX_MEMORY_SIZE where a view reads
    ``request.body`` or form fields, and then as a 400 page; DRF's JSON parser
    reads the stream without any limit. Multipart uploads are left to the
    multipart parser, which counts only non-file fields."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return _json_error("Content-Length is not a number", 400)
            multipart = request.content_type.startswith("multipart/")
            if limit is not None and length > limit and not multipart:
                return _json_error(_too_large(), 413)
        return self.get_response(request)


def _flatten(errors, prefix: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = key if key != "non_field_errors" else ""
            out += _flatten(
                value, f"{prefix}.{name}" if prefix and name else (name or prefix)
            )
    elif isinstance(errors, list):
        for item in errors:
            out += _flatten(item, prefix)
    else:
        out.append(f"{prefix}: {errors}" if prefix else str(errors))
    return out


def api_exception_handler(exc, context):
    """DRF's handler, plus our domain errors, always answering ``{"detail": ...}``."""
    if isinstance(exc, FlowInvalid):
        return Response(
            {
                "detail": f"invalid flow: {exc.errors[0]}"
                + (f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""),
                "errors": [e.as_dict() for e in exc.errors],
            },
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    if isinstance(exc, InputError):
        return Response(
            {"detail": f"invalid inputs: {exc}", "errors": exc.errors},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, IllegalTransition | StaleState):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ActionError | BadCursor):
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        return Response(
            {"detail": "; ".join(exc.messages)}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": _too_large()}, status=413)
    if isinstance(exc, Http404):
        message = str(exc) or "not found"
        return Response({"detail": message}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        return Response(
            {"detail": str(exc) or "permission denied"},
            status=status.HTTP_403_FORBIDDEN,
        )
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if not (
        isinstance(data, dict)
        and set(data) <= {"detail", "errors"}
        and "detail" in data
    ):
        messages = _flatten(data)
        response.data = {
            "detail": "invalid request: " + "; ".join(messages),
            "errors": data,
        }
    return response


def json_not_found(request, exception=None):
    """Unknown URLs: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": f"no API endpoint {request.path}; see /api/docs/"}, status=404
        )
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


# Seconds a client is told to wait when the database is away.
DATABASE_RETRY_AFTER = 5


def _database_unreachable() -> bool:
    import sys

    from django.db import InterfaceError, OperationalError

    return isinstance(sys.exc_info()[1], OperationalError | InterfaceError)


def json_bad_request(request, exception=None):
    """Malformed requests Django refuses itself (SuspiciousOperation, a body
    too large for a form): JSON under /api/."""
    if request.path.startswith("/api/"):
        if isinstance(exception, RequestDataTooBig):
            return _json_error(_too_large(), 413)
        return _json_error(f"bad request: {exception or 'malformed'}", 400)
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def json_permission_denied(request, exception=None):
    if request.path.startswith("/api/"):
        return _json_error(str(exception or "") or "permission denied", 403)
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)


def json_server_error(request):
    """Uncaught errors. The database being away is not a server bug: a 503
    that says so (and nothing about where the database is), styled for
    people, JSON under /api/, with Retry-After."""
    if _database_unreachable():
        if request.path.startswith("/api/"):
            response = JsonResponse(
                {"detail": "Orchestra cannot reach its database; retry shortly"},
                status=503,
            )
        else:
            from django.http import HttpResponse
            from django.template.loader import render_to_string

            response = HttpResponse(
                render_to_string(
                    "503_database.html", {"retry_after": DATABASE_RETRY_AFTER}
                ),
                status=503,
            )
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "internal error; the server log has the details"}, status=500
        )
    from django.views.defaults import server_error

    return server_error(request)


try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class BearerTokenScheme(OpenApiAuthenticationExtension):
        target_class = "accounts.authentication.BearerTokenAuthentication"
        name = "bearerAuth"

        def get_security_definition(self, auto_schema):
            return {
                "type": "http",
                "scheme": "bearer",
                "description": "orchestra users token USER --name WHAT",
            }
except ImportError:  # pragma: no cover — drf-spectacular is a dependency
    pass
