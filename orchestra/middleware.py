"""Request guards that hold for every page and endpoint, whatever the role.

- Bodies over the configured size are refused (413) before anything reads
  them: DRF reads the request stream itself, so Django's
  DATA_UPLOAD_MAX_MEMORY_SIZE alone does not cover the API.
- A NUL byte in the path, a query parameter or a form field is refused
  (400): PostgreSQL cannot store it and psycopg raises ValueError on it.
- Values that do not fit a column (DataError: too long, out of range, an
  escape PostgreSQL cannot store) are the sender's mistake: 400, not 500.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DataError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape


def _refuse(request: HttpRequest, status: int, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=status)
    return HttpResponse(
        f"<!doctype html><title>{status}</title><h1>{status}</h1><p>{escape(message)}</p>",
        status=status,
    )


def _has_nul(pairs) -> str | None:
    for key, values in pairs:
        if "\x00" in key or any("\x00" in v for v in values):
            return key.replace("\x00", "\\x00")
    return None


class InputGuard:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refused = self._check(request)
        return refused or self.get_response(request)

    def _check(self, request: HttpRequest) -> HttpResponse | None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _refuse(request, 400, "Content-Length is not a number")
        multipart = (request.content_type or "").startswith("multipart/")
        cap = (
            settings.ORCHESTRA_MAX_UPLOAD_BYTES
            if multipart
            else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        )
        if cap is not None and length > cap:
            return _refuse(
                request,
                413,
                f"the request body is {length:,} bytes; at most {cap:,} are accepted"
                + (" (file uploads)" if multipart else ""),
            )
        if "\x00" in request.path:
            return _refuse(request, 400, "the URL contains a NUL byte")
        name = _has_nul(request.GET.lists())
        if name is None and request.content_type == "application/x-www-form-urlencoded":
            name = _has_nul(request.POST.lists())
        if name is not None:
            return _refuse(request, 400, f"parameter {name!r} contains a NUL byte")
        return None

    def process_exception(self, request: HttpRequest, exception: Exception):
        if isinstance(exception, DataError):
            first = str(exception).strip().splitlines()[0] if str(exception) else ""
            return _refuse(
                request, 400, f"a value does not fit what can be stored: {first}"
            )
        if isinstance(exception, ValueError) and "NUL (0x00)" in str(exception):
            return _refuse(request, 400, "a value contains a NUL byte")
        return None
