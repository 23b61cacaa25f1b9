"""Shared REST pieces: YAML request bodies, JSON errors, the unknown-URL answer.

Every API error is JSON with a ``detail`` sentence a person can act on;
validation errors add ``errors`` (per field, or flow errors with line and
column).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, parsers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from executions.filters import BadCursor
from executions.lifecycle.base import ActionError
from executions.lifecycle.machine import IllegalTransition, StaleState
from flows.spec import FlowInvalid
from flows.spec.inputs import InputError
from orchestra.lib import nesting


class BoundedJSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing data nested deeper than 64 levels (400)
    instead of letting Python's recursive decoder fail (500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error: nested too deeply") from None
        try:
            return nesting.check_depth(data)
        except nesting.TooDeep as exc:
            raise exceptions.ParseError(f"JSON parse error: {exc}") from None


class YAMLTextParser(parsers.BaseParser):
    """A raw YAML document (``Content-Type: text/yaml``) becomes ``{"source": text}``."""

    media_type = "text/yaml"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream else b""
        try:
            return {"source": raw.decode("utf-8")}
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(
                f"the YAML body is not UTF-8 text ({exc.reason})"
            ) from None


class XYAMLTextParser(YAMLTextParser):
    media_type = "application/x-yaml"


class ApplicationYAMLParser(YAMLTextParser):
    media_type = "application/yaml"


YAML_PARSERS = [YAMLTextParser, XYAMLTextParser, ApplicationYAMLParser]


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


def json_server_error(request):
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
