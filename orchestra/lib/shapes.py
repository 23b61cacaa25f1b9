"""Answers of the REST API through the serializer that documents them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


def shaped(serializer_class: type[serializers.Serializer], data: Any, **kw) -> Any:
    """``data`` (a presenter's dict, or a list of them with ``many=True``)
    through the serializer of its OpenAPI schema: an answer holds exactly the
    documented fields, so the schema cannot fall behind what is sent."""
    return serializer_class(data, **kw).data
