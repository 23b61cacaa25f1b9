"""Request and response shapes of the flows API."""

from __future__ import annotations

from rest_framework import serializers


class FlowSourceIn(serializers.Serializer):
    source = serializers.CharField(
        trim_whitespace=False,
        max_length=1_000_000,
        help_text="The flow YAML. Or send the YAML itself with Content-Type: text/yaml.",
    )


class FlowOut(serializers.Serializer):
    namespace = serializers.CharField()
    id = serializers.CharField()
    revision = serializers.IntegerField()
    disabled = serializers.BooleanField()
    description = serializers.CharField(allow_blank=True)
    updated = serializers.CharField()
    source = serializers.CharField(required=False)


class FlowErrorOut(serializers.Serializer):
    path = serializers.CharField()
    message = serializers.CharField()
    line = serializers.IntegerField(allow_null=True)
    column = serializers.IntegerField(allow_null=True)


class ValidationOut(serializers.Serializer):
    valid = serializers.BooleanField()
    namespace = serializers.CharField(allow_null=True)
    id = serializers.CharField(allow_null=True)
    errors = FlowErrorOut(many=True)
    warnings = serializers.ListField(child=serializers.CharField(), required=False)


class RevisionOut(serializers.Serializer):
    revision = serializers.IntegerField()
    created = serializers.CharField()
    createdBy = serializers.CharField(allow_blank=True)
    checksum = serializers.CharField()
