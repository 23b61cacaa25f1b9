"""REST endpoint for backfilling a Schedule trigger."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from accounts import roles
from executions.lifecycle.actor import Actor
from executions.serializers import LabelsField, reject_nul
from executions.triggers import schedule
from flows.access import get_flow_for_user
from flows.expressions import format_native
from orchestra.lib.shapes import shaped


class BackfillIn(serializers.Serializer):
    start = serializers.CharField(
        max_length=64,
        help_text="ISO date or datetime (2024-01-31, 2024-01-31T06:00:00); "
        "without an offset it is in the trigger's time zone",
    )
    end = serializers.CharField(
        max_length=64,
        help_text="ISO date or datetime, inclusive: a date includes that whole day",
    )
    inputs = serializers.DictField(
        required=False, default=dict, help_text="overrides of the trigger's inputs"
    )
    labels = LabelsField(required=False, default=dict)
    dryRun = serializers.BooleanField(
        required=False,
        default=False,
        help_text="List the dates (and which fired already); start nothing.",
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            allowed = set(self.fields) | {"dry_run"}
            unknown = sorted(set(data) - allowed)
            if unknown:
                raise serializers.ValidationError(
                    {
                        "non_field_errors": [
                            f"unknown field(s) {', '.join(unknown)}; allowed: "
                            + ", ".join(sorted(self.fields))
                        ]
                    }
                )
            if "dry_run" in data and "dryRun" not in data:  # the bulk API's spelling
                data = {**data, "dryRun": data["dry_run"]}
                data.pop("dry_run")
        return super().to_internal_value(data)

    def validate_inputs(self, value):
        return reject_nul(value, "inputs")

    def validate_labels(self, value):
        return reject_nul(value, "labels")


class BackfillDateOut(serializers.Serializer):
    date = serializers.CharField()
    execution_id = serializers.IntegerField()


class BackfillFailedOut(serializers.Serializer):
    date = serializers.CharField()
    reason = serializers.CharField()


class BackfillOut(serializers.Serializer):
    dry_run = serializers.BooleanField()
    trigger = serializers.CharField()
    dates = serializers.ListField(
        child=serializers.CharField(), help_text="every cron date of the range"
    )
    already_fired = serializers.ListField(
        child=serializers.CharField(),
        help_text="dates that fired before; they are left alone",
    )
    to_fire = serializers.ListField(
        child=serializers.CharField(),
        help_text="dates that start (or, in a dry run, would start) an execution",
    )
    created = BackfillDateOut(many=True)
    execution_ids = serializers.ListField(child=serializers.IntegerField())
    failed = BackfillFailedOut(many=True)
    message = serializers.CharField()


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
        shaped(
            BackfillOut,
            {
                "dry_run": dry_run,
                "trigger": trigger_id,
                **report.as_dict(),
                "to_fire": [format_native(d) for d in report.to_fire],
                "execution_ids": [pk for _, pk in report.created],
                "message": report.summary(dry_run),
            },
        )
    )
