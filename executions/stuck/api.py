"""``POST /api/executions/cleanup``: preview and cancel stuck executions over REST."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from accounts import roles
from executions.lifecycle.actor import Actor
from executions.stuck import cleanup

FIELDS = {"older_than_minutes", "dry_run", "namespace", "flow", "max"}


def _int_field(data: dict, name: str, default: int | None) -> int | None:
    value = data.get(name, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    if value > cleanup.MAX_COUNT and name == "max":
        raise ValueError(f"max must be at most {cleanup.MAX_COUNT}, got {value}")
    if value > cleanup.MAX_MINUTES and name == "older_than_minutes":
        raise ValueError(
            f"{name} must be at most {cleanup.MAX_MINUTES} (ten years), got {value}"
        )
    return value


def _parse(data: Any) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(
            "the body must be a JSON object such as "
            '{"older_than_minutes": 5, "dry_run": true}'
        )
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(FIELDS))}"
        )
    dry_run = data.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ValueError(f"dry_run must be true or false, got {dry_run!r}")
    text = {}
    for name in ("namespace", "flow"):
        value = data.get(name) or ""
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        text[name] = value.strip()
    return {
        "older_than_minutes": _int_field(data, "older_than_minutes", 5),
        "dry_run": dry_run,
        "max_count": _int_field(data, "max", None),
        **text,
    }


class CleanupRequest(serializers.Serializer):
    older_than_minutes = serializers.IntegerField(
        min_value=1, default=5, required=False
    )
    dry_run = serializers.BooleanField(default=False, required=False)
    namespace = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Only this namespace and its children.",
    )
    flow = serializers.CharField(required=False, allow_blank=True, help_text="Flow id.")
    max = serializers.IntegerField(
        min_value=1,
        max_value=cleanup.MAX_COUNT,
        required=False,
        allow_null=True,
        help_text="Cancel at most this many, oldest first.",
    )


class CleanupResponse(serializers.Serializer):
    cancelled_count = serializers.IntegerField()
    execution_ids = serializers.ListField(child=serializers.IntegerField())
    message = serializers.CharField()
    dry_run = serializers.BooleanField()
    cleanup_id = serializers.IntegerField()
    reasons = serializers.DictField(child=serializers.CharField())
    stuck = serializers.ListField(child=serializers.DictField())
    skipped = serializers.ListField(child=serializers.DictField())
    beyond_cap = serializers.IntegerField()
    not_permitted = serializers.ListField(child=serializers.DictField())
    spared_count = serializers.IntegerField()
    spared = serializers.ListField(child=serializers.DictField())


@extend_schema(
    request=CleanupRequest,
    responses={200: CleanupResponse},
    tags=["executions"],
    summary="Cancel stuck executions (or list them with dry_run)",
)
@api_view(["POST"])
def cleanup_api(request):
    """Find stuck executions and cancel them (or only list them with dry_run).

    Body (all optional): ``{"older_than_minutes": 5, "dry_run": false,
    "namespace": "", "flow": "", "max": null}``. Answer: ``cancelled_count``,
    ``execution_ids``, ``message``, plus reasons, spared and skipped rows.
    Only executions in namespaces where the caller is operator are cancelled.
    """
    try:
        params = _parse(request.data if request.body else {})
    except ValueError as exc:
        return Response({"detail": str(exc)}, status=400)
    ns = params["namespace"]
    if (
        ns
        and not params["dry_run"]
        and not roles.has_role(request.user, ns, roles.OPERATOR)
    ):
        return Response(
            {"detail": f"you need the operator role on namespace {ns!r}"}, status=403
        )
    result = cleanup.run_cleanup(
        older_than_minutes=params["older_than_minutes"],
        dry_run=params["dry_run"],
        namespace=ns,
        flow=params["flow"],
        max_count=params["max_count"],
        actor=Actor.from_request(request, "api"),
    )
    return Response(result)
