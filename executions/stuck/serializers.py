"""The cleanup request and answer (REST body, CLI --json), also their OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers

from executions.stuck import cleanup
from orchestra.lib.shapes import (
    NoUnknownFields,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
)


class CleanupIn(NoUnknownFields, serializers.Serializer):
    """The one definition of the cleanup request: it validates the body and
    documents it (the page's form and the CLI flags share its bounds)."""

    older_than_minutes = StrictIntegerField(
        min_value=1,
        max_value=cleanup.MAX_MINUTES,
        default=5,
        required=False,
        help_text="Minimum age, and minimum time without progress for a stall.",
    )
    dry_run = StrictBooleanField(
        default=False, required=False, help_text="List what would be cancelled."
    )
    namespace = StrictCharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=255,
        help_text="Only this namespace and its children.",
    )
    flow = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=255,
        help_text="Flow id.",
    )
    max = StrictIntegerField(
        min_value=1,
        max_value=cleanup.MAX_CAP,
        required=False,
        allow_null=True,
        default=None,
        help_text="Cancel at most this many, oldest first.",
    )


class VerdictOut(serializers.Serializer):
    id = serializers.IntegerField()
    namespace = serializers.CharField()
    flow_id = serializers.CharField()
    state = serializers.CharField()
    created_at = serializers.CharField()
    progress_at = serializers.CharField()
    kind = serializers.CharField()
    reason = serializers.CharField()
    worker = serializers.CharField(allow_null=True, allow_blank=True)


class SkippedOut(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()


class SparedOut(serializers.Serializer):
    id = serializers.IntegerField()
    flow = serializers.CharField()
    kind = serializers.CharField()
    reason = serializers.CharField()
    worker = serializers.CharField(allow_null=True, allow_blank=True)


class CleanupOut(serializers.Serializer):
    cancelled_count = serializers.IntegerField()
    execution_ids = serializers.ListField(child=serializers.IntegerField())
    message = serializers.CharField()
    dry_run = serializers.BooleanField()
    cleanup_id = serializers.IntegerField()
    reasons = serializers.DictField(child=serializers.CharField())
    stuck = VerdictOut(many=True)
    skipped = SkippedOut(many=True)
    beyond_cap = serializers.IntegerField()
    not_permitted = VerdictOut(many=True)
    spared_count = serializers.IntegerField()
    spared = SparedOut(many=True)
