"""REST endpoint for backfilling a Schedule trigger."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.response import Response

from accounts import roles
from executions.lifecycle.actor import Actor
from executions.serializers import BackfillIn, BackfillOut
from executions.triggers import schedule
from flows.access import get_flow_for_user
from flows.expressions import format_native


@extend_schema(
    summary="Backfill a Schedule trigger over a date range (operator)",
    description="Starts one execution per cron date from 'start' to 'end' (inclusive). "
    "Dates that fired already (on schedule or by an earlier backfill) are left alone, so "
    "the same call can be repeated safely. With dryRun nothing starts: the answer lists "
    "the dates and which of them fired already. At most "
    f"{schedule.MAX_BACKFILL_HTTP} dates per call. 400 (with 'detail') for a date that "
    "is not ISO-8601, an end before the start, an unknown trigger (the flow's schedules "
    "are named) or too many dates.",
    request=BackfillIn,
    responses={200: BackfillOut},
)
@api_view(["POST"])
def backfill_trigger(request, namespace: str, flow_id: str, trigger_id: str):
    get_flow_for_user(request, namespace, flow_id, roles.OPERATOR)
    body = BackfillIn(data=request.data)
    body.is_valid(raise_exception=True)
    data = body.validated_data
    dry_run = data["dryRun"]
    report = schedule.backfill(
        namespace,
        flow_id,
        trigger_id,
        data["start"],
        data["end"],
        inputs=data["inputs"],
        labels=data["labels"],
        actor=Actor.from_request(request, "api"),
        dry_run=dry_run,
        max_dates=schedule.MAX_BACKFILL_HTTP,
    )
    return Response(
        {
            "dry_run": dry_run,
            "trigger": trigger_id,
            **report.as_dict(),
            "to_fire": [format_native(d) for d in report.to_fire],
            "execution_ids": [pk for _, pk in report.created],
            "message": report.summary(dry_run),
        }
    )
