"""Answers of the REST API through the serializer that documents them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


def shaped(serializer_class: type[serializers.Serializer], data: Any, **kw) -> Any:
    """``data`` (a presenter's dict, or a list of them with ``many=True``)
    through the serializer of its OpenAPI schema: an answer holds exactly the
    documented fields, so the schema cannot fall behind what is sent."""
    return serializer_class(data, **kw).data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: ``"5"``, ``2.5`` and ``true`` are refused, not coerced;
    the messages name the value received."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError(f"must be an integer, got {data!r}")
        if self.min_value is not None and data < self.min_value:
            raise serializers.ValidationError(
                f"must be at least {self.min_value}, got {data}"
            )
        if self.max_value is not None and data > self.max_value:
            raise serializers.ValidationError(
                f"must be at most {self.max_value}, got {data}"
            )
        return data


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            raise serializers.ValidationError(f"must be true or false, got {data!r}")
        return data


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError(f"must be a string, got {data!r}")
        if "\x00" in data:
            raise serializers.ValidationError("contains a NUL character (\\u0000)")
        return super().to_internal_value(data)


class NoUnknownFields:
    """A serializer mixin: a field it does not know is an error that lists
    the fields it does (a typo must not be silently ignored)."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        f"unknown field(s) {', '.join(unknown)}; allowed: "
                        + ", ".join(sorted(self.fields))
                    ]
                }
            )
        return super().to_internal_value(data)
