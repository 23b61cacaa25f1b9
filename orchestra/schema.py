"""OpenAPI schema additions: the error answers every operation can give.

Every API error is ``{"detail": "...", "errors": ...}`` (orchestra/api.py);
this hook documents, per operation, the statuses that shape comes with, so a
client generated from /api/schema/ knows every answer it can get. Statuses
specific to one endpoint (409, 422, ...) are declared on the endpoint itself.
"""

from __future__ import annotations

ERROR = {
    "type": "object",
    "description": "Every API error: a sentence a person can act on, and for "
    "validation errors the details per field (or flow errors with line/column).",
    "properties": {
        "detail": {"type": "string"},
        "errors": {"description": "per-field messages or flow errors"},
    },
    "required": ["detail"],
}
REF = {"$ref": "#/components/schemas/Error"}
WHY = {
    "400": "Malformed request: invalid JSON, a body that is not a JSON object, "
    "or an invalid field or parameter",
    "401": "Not authenticated (no, invalid or expired token)",
    "403": "Authenticated but missing the role this needs",
    "404": "No such object, or one in a namespace you may not see",
    "409": "The object's state does not allow this",
    "413": "The request body is over the size limit",
    "415": "Unsupported Content-Type for this endpoint",
    "422": "The flow is invalid (errors with line and column)",
    "503": "A service this needs is not configured or not reachable "
    "(e.g. ORCHESTRA_SECRETS_KEY for namespace secrets)",
}
BODY_METHODS = {"post", "put", "patch"}


def _error(code: str) -> dict:
    return {"description": WHY[code], "content": {"application/json": {"schema": REF}}}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            params = operation.get("parameters", [])
            codes = {"401"}
            if method in BODY_METHODS or method == "delete":
                codes.add("403")
            if any(p.get("in") == "path" for p in params):
                codes.add("404")
            if any(p.get("in") == "query" for p in params) or (
                "requestBody" in operation
            ):
                codes.add("400")
            if method in BODY_METHODS:
                codes |= {"400", "413", "415"}
            for code in sorted(codes):
                responses.setdefault(code, _error(code))
            for code, answer in responses.items():
                # Errors an endpoint declares itself (``409: None``) get the
                # one error shape and its description.
                if code in WHY and "content" not in answer:
                    responses[code] = {
                        **_error(code),
                        **{k: v for k, v in answer.items() if k == "description" and v},
                    }
    return result
