"""Response shapes of the accounts API (also its OpenAPI schema)."""

from __future__ import annotations

from rest_framework import serializers


class RoleOut(serializers.Serializer):
    role = serializers.CharField()
    namespace = serializers.CharField(allow_blank=True, help_text="'' is every one")


class MeOut(serializers.Serializer):
    username = serializers.CharField()
    superuser = serializers.BooleanField()
    roles = RoleOut(many=True)
    viewer_prefixes = serializers.ListField(
        child=serializers.CharField(allow_blank=True),
        allow_null=True,
        help_text="namespace prefixes you may view; null: all of them",
    )
