"""Request and response shapes of the SLA API (``/api/sla/...``), also its
OpenAPI schema. The request serializer checks the JSON types; the rule itself
is then validated by the same form as the pages (sla/forms.py)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from executions.serializers import LabelsField
from orchestra.lib.shapes import NoUnknownFields, StrictBooleanField, StrictIntegerField

DURATION = "ISO-8601 (PT1H30M), short (45m, 1h30m) or a number of seconds"


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "integer"}]})
class DurationInField(serializers.Field):
    """A duration as text, or a JSON number of seconds (``"sla": 60``); the
    rule form parses and bounds it."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            kind = (
                type(data)
                .__name__.replace("dict", "an object")
                .replace("list", "a list")
            )
            raise serializers.ValidationError(
                f"must be a duration such as PT1H30M or a number of seconds, not {kind}"
            )
        if isinstance(data, str):
            if len(data) > 64:
                raise serializers.ValidationError("at most 64 characters")
            return data
        return f"{data:g}s" if isinstance(data, float) else f"{data}s"

    def to_representation(self, value):
        return value


@extend_schema_field(
    {
        "oneOf": [
            {"type": "array", "items": {"type": "string", "format": "email"}},
            {"type": "string", "description": "addresses separated by commas"},
        ]
    }
)
class RecipientsField(serializers.Field):
    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, list) and all(isinstance(i, str) for i in data):
            return ", ".join(data)
        raise serializers.ValidationError(
            'expected ["a@example.com", ...] or "a@example.com, b@example.com"'
        )

    def to_representation(self, value):
        return value


class RuleIn(NoUnknownFields, serializers.Serializer):
    """A rule's fields; on PUT/PATCH only those sent change."""

    name = serializers.CharField(required=False, max_length=200)
    namespace = serializers.CharField(required=False, max_length=255)
    flowId = serializers.CharField(required=False, allow_null=True, max_length=255)
    labels = LabelsField(required=False, allow_null=True)
    slo = DurationInField(required=False, allow_null=True, help_text=DURATION)
    sla = DurationInField(required=False, allow_null=True, help_text=DURATION)
    expectedRuns = StrictIntegerField(
        required=False, allow_null=True, min_value=1, max_value=1_000_000
    )
    expectedCron = serializers.CharField(
        required=False, allow_null=True, max_length=200
    )
    timezone = serializers.CharField(required=False, max_length=64)
    recipients = RecipientsField(required=False, allow_null=True)
    onBreach = serializers.CharField(required=False, max_length=16)
    addLabels = LabelsField(required=False, allow_null=True)
    enabled = StrictBooleanField(required=False)


class RuleOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    namespace = serializers.CharField()
    flowId = serializers.CharField(allow_null=True)
    labels = serializers.DictField(child=serializers.CharField())
    slo = serializers.CharField(allow_null=True, help_text="ISO-8601 duration")
    sla = serializers.CharField(allow_null=True, help_text="ISO-8601 duration")
    expectedRuns = serializers.IntegerField(allow_null=True)
    expectedCron = serializers.CharField(allow_null=True)
    timezone = serializers.CharField()
    recipients = serializers.ListField(child=serializers.CharField())
    onBreach = serializers.CharField()
    addLabels = serializers.DictField(child=serializers.CharField())
    enabled = serializers.BooleanField()


class CandidateOut(serializers.Serializer):
    rule = RuleOut()
    status = serializers.ChoiceField(
        choices=["applies", "labels", "no match", "overridden"],
        help_text="what the rule does for runs with these labels",
    )


class ApplyingOut(serializers.Serializer):
    namespace = serializers.CharField()
    flowId = serializers.CharField()
    labels = serializers.DictField(
        child=serializers.CharField(), help_text="the run's labels asked about"
    )
    rule = RuleOut(allow_null=True, help_text="null: no rule applies")
    candidates = CandidateOut(many=True)


class MissOut(serializers.Serializer):
    id = serializers.IntegerField()
    level = serializers.CharField()
    kind = serializers.CharField()
    ruleId = serializers.IntegerField(allow_null=True)
    source = serializers.CharField()
    namespace = serializers.CharField()
    flowId = serializers.CharField(allow_null=True)
    executionId = serializers.IntegerField(allow_null=True)
    executionUrl = serializers.CharField(allow_null=True)
    executionState = serializers.CharField(
        allow_null=True, help_text="the execution's state when the miss was seen"
    )
    currentState = serializers.CharField(
        allow_null=True, help_text="the execution's state now"
    )
    startDate = serializers.CharField(allow_null=True)
    threshold = serializers.CharField(allow_null=True)
    duration = serializers.CharField(allow_null=True)
    windowStart = serializers.CharField(allow_null=True)
    windowEnd = serializers.CharField(allow_null=True)
    expected = serializers.IntegerField(allow_null=True)
    actual = serializers.IntegerField(allow_null=True)
    detectedDate = serializers.CharField(allow_null=True)
    action = serializers.CharField(allow_null=True)
    recipients = serializers.ListField(child=serializers.CharField())
    emailed = serializers.BooleanField()


class MissPageOut(serializers.Serializer):
    results = MissOut(many=True)
    next = serializers.CharField(
        allow_null=True, help_text="URL of the next (older) page"
    )
