"""``POST /api/executions/cleanup``: preview and cancel stuck executions over REST."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.response import Response

from accounts import roles
from executions.lifecycle.actor import Actor
from executions.stuck import cleanup
from executions.stuck.serializers import CleanupIn, CleanupOut
from orchestra.lib.shapes import shaped


@extend_schema(
    request=CleanupIn,
    responses={200: CleanupOut},
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
    body = CleanupIn(data=request.data)
    body.is_valid(raise_exception=True)
    params = body.validated_data
    ns = params["namespace"].strip()
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
        flow=params["flow"].strip(),
        max_count=params["max"],
        actor=Actor.from_request(request, "api"),
    )
    return Response(shaped(CleanupOut, result))
