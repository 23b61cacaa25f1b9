"""Webhook triggers: ``/api/executions/webhook/<namespace>/<flow>/<key>``.

No login: the key is the secret. GET, POST and PUT are accepted; the body
(parsed when it is JSON), the headers and the query string reach the flow
as ``trigger.body``, ``trigger.headers`` and ``trigger.parameters``.

404: no such live flow with a Webhook trigger of that key (the same answer
for both, so the endpoint does not reveal which flows exist). 204: the
trigger's conditions say no. 429 with Retry-After: the flow's token bucket
is empty. 200: the execution, with its id.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from executions.lifecycle.admission import lock_gate
from executions.triggers.fire import (
    TriggerError,
    execution_for_trigger,
    latest_revision,
    trigger_actor,
)
from flows import limits
from flows.expressions import (
    SECRETS_KEY,
    ExpressionError,
    is_dynamic,
    render,
)
from flows.secrets import scope as secret_scope
from flows.triggers import expression_conditions_hold
from orchestra.lib import nesting
from orchestra.lib.secrets import mask


def _not_found() -> JsonResponse:
    return JsonResponse(
        {"message": "no flow with a Webhook trigger for this key"}, status=404
    )


def find_trigger(namespace: str, flow_id: str, key: str):
    """(revision, trigger) of the live flow's enabled Webhook trigger whose
    key matches, or None."""
    revision = latest_revision(namespace, flow_id)
    if revision is None or revision.flow.disabled:
        return None
    for decl in revision.spec.triggers:
        if decl["kind"] != "webhook" or decl.get("disabled"):
            continue
        expected = decl.get("key", "")
        if is_dynamic(expected):  # e.g. "{{ secret('WEBHOOK_KEY') }}"
            try:
                expected = str(render(expected, {SECRETS_KEY: secret_scope(namespace)}))
            except ExpressionError:
                continue
        if hmac.compare_digest(str(expected).encode(), key.encode()):
            return revision, decl
    return None


def take_token(namespace: str, flow_id: str) -> float:
    """Token bucket per flow, kept on the flow's gate row so every web
    process shares it. Returns 0 when a token was taken, else the seconds to
    wait for the next one."""
    rate = settings.ORCHESTRA_WEBHOOK_RATE
    burst = settings.ORCHESTRA_WEBHOOK_BURST
    with transaction.atomic():
        gate = lock_gate(namespace, flow_id)
        now = timezone.now()
        tokens = burst if gate.webhook_tokens is None else gate.webhook_tokens
        if gate.webhook_refilled_at is not None:
            elapsed = max((now - gate.webhook_refilled_at).total_seconds(), 0.0)
            tokens = min(burst, tokens + elapsed * rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        gate.webhook_tokens, gate.webhook_refilled_at = tokens, now
        gate.save(update_fields=["webhook_tokens", "webhook_refilled_at"])
    return wait


# Headers that carry the caller's credentials: never stored with the
# execution, never shown to its viewers.
PRIVATE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-csrftoken"}
)


def _client(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"


def _miss_keys(request: HttpRequest, namespace: str, flow_id: str) -> list[tuple]:
    digest = hashlib.sha256(f"{namespace}\x00{flow_id}".encode()).hexdigest()[:32]
    return [
        (f"webhook-miss:flow:{digest}", settings.ORCHESTRA_WEBHOOK_MISSES_PER_FLOW),
        (
            f"webhook-miss:client:{_client(request)}",
            settings.ORCHESTRA_WEBHOOK_MISSES_PER_CLIENT,
        ),
    ]


def _locked_out(request: HttpRequest, namespace: str, flow_id: str) -> bool:
    """Too many wrong keys lately, for this flow or from this client. While
    locked, every call is refused, the right key too: otherwise the answer
    would still tell a right guess from a wrong one."""
    return any(
        (cache.get(key) or 0) >= limit
        for key, limit in _miss_keys(request, namespace, flow_id)
    )


def _count_miss(request: HttpRequest, namespace: str, flow_id: str) -> None:
    window = settings.ORCHESTRA_WEBHOOK_MISS_WINDOW_SECONDS
    for key, _ in _miss_keys(request, namespace, flow_id):
        if cache.add(key, 1, timeout=window):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window)


def _too_many_misses() -> JsonResponse:
    window = settings.ORCHESTRA_WEBHOOK_MISS_WINDOW_SECONDS
    response = JsonResponse(
        {"message": f"too many wrong webhook keys; retry in {window} s"}, status=429
    )
    response["Retry-After"] = str(window)
    return response


def _body(request: HttpRequest) -> Any:
    raw = request.body
    if not raw:
        return None
    text = raw.decode(request.encoding or "utf-8", errors="replace")
    content_type = request.content_type or ""
    if content_type == "application/json" or content_type.endswith("+json"):
        return nesting.loads(text)  # a ValueError here is answered with 400
    if content_type in ("", "text/plain") and text.lstrip()[:1] in ("{", "["):
        try:
            return nesting.loads(text)
        except ValueError:
            return text
    if content_type == "application/x-www-form-urlencoded":
        return {k: v if len(v) > 1 else v[0] for k, v in request.POST.lists()}
    return text


@csrf_exempt
@login_not_required
@require_http_methods(["GET", "POST", "PUT"])
def webhook(
    request: HttpRequest, namespace: str, flow_id: str, key: str
) -> HttpResponse:
    if _locked_out(request, namespace, flow_id):
        return _too_many_misses()
    with limits.budget(settings.ORCHESTRA_WEBHOOK_EXPRESSION_SECONDS):
        found = find_trigger(namespace, flow_id, key)
    if found is None:
        _count_miss(request, namespace, flow_id)
        return _not_found()
    with limits.budget(settings.ORCHESTRA_WEBHOOK_EXPRESSION_SECONDS):
        return _accept(request, namespace, flow_id, *found)


def _accept(
    request: HttpRequest, namespace: str, flow_id: str, revision, decl: dict
) -> HttpResponse:
    wait = take_token(namespace, flow_id)
    if wait:
        response = JsonResponse(
            {
                "message": f"too many webhook calls for {namespace}.{flow_id}; "
                f"retry in {math.ceil(wait)} s"
            },
            status=429,
        )
        response["Retry-After"] = str(math.ceil(wait))
        return response
    try:
        body = _body(request)
    except ValueError as exc:
        return JsonResponse(
            {"message": f"the body is not valid JSON: {exc}"}, status=400
        )
    variables = {
        "body": body,
        # The caller's credentials (a session cookie, a bearer token) are not
        # the flow's business and would be stored and shown to its viewers.
        "headers": {
            name.lower(): [value]
            for name, value in request.headers.items()
            if name.lower() not in PRIVATE_HEADERS
        },
        "parameters": {k: v for k, v in request.GET.lists()},
        "method": request.method,
    }
    if nesting.contains_nul(variables):
        # PostgreSQL cannot store a NUL character in the execution's trigger.
        return JsonResponse(
            {
                "message": "the request contains a NUL character (\\u0000), which cannot be stored"
            },
            status=400,
        )
    try:
        why_not = expression_conditions_hold(
            decl, {"trigger": variables, SECRETS_KEY: secret_scope(namespace)}
        )
    except ExpressionError as exc:
        # Answered to an anonymous caller: never with a secret in it.
        return JsonResponse(
            {"message": mask(f"trigger '{decl['id']}' condition: {exc.message}")},
            status=400,
        )
    if why_not:
        return HttpResponse(status=204)
    try:
        execution = execution_for_trigger(
            revision, decl, variables, actor=trigger_actor(f"webhook:{decl['id']}")
        )
    except TriggerError as exc:
        return JsonResponse({"message": str(exc)}, status=400)
    return JsonResponse(
        {
            "id": execution.pk,
            "namespace": execution.namespace,
            "flowId": execution.flow_id,
            "state": execution.state,
            "url": f"{settings.ORCHESTRA_BASE_URL.rstrip('/')}{execution.get_absolute_url()}",
        }
    )
