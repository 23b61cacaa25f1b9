"""REST endpoints for a namespace's trust settings: allowed namespaces and secrets.

Editors of a namespace see its allowed namespaces and the *names* of the
secrets its flows can read; admins change them. No endpoint ever returns a
secret value. Every change is a NamespaceChange row (who, via, why).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts import roles
from flows import namespaces, secrets
from flows.expressions import format_native
from orchestra.lib.secrets import SecretError, SecretsKeyMissing


def _namespace(request, namespace: str, role: str) -> str:
    try:
        namespaces.check_namespace_name(namespace)
    except namespaces.SettingError as exc:
        raise ValidationError({"namespace": str(exc)}) from None
    roles.require(request.user, namespace, role)
    return namespace


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationError({"detail": "the body must be a JSON object"})
    return request.data


def _reason(value: object) -> str:
    try:
        return namespaces.clean_reason(value)
    except namespaces.SettingError as exc:
        raise ValidationError({"reason": str(exc)}) from None


def secret_as_dict(row: dict) -> dict:
    return {
        "name": row["name"],
        "namespace": row["namespace"],
        "inherited": row.get("inherited", False),
        "updated_at": format_native(row["updated_at"]),
        "updated_by": row["updated_by"],
    }


SettingsOut = inline_serializer(
    "NamespaceSettingsOut",
    {
        "namespace": serializers.CharField(),
        "allowed_namespaces": serializers.ListField(child=serializers.CharField()),
    },
)
SettingsIn = inline_serializer(
    "NamespaceSettingsIn",
    {
        "allowed_namespaces": serializers.ListField(child=serializers.CharField()),
        "reason": serializers.CharField(required=False),
    },
)
SecretOut = inline_serializer(
    "NamespaceSecretOut",
    {
        "name": serializers.CharField(),
        "namespace": serializers.CharField(),
        "inherited": serializers.BooleanField(),
        "updated_at": serializers.CharField(),
        "updated_by": serializers.CharField(),
    },
)
SecretIn = inline_serializer(
    "NamespaceSecretIn",
    {
        "value": serializers.CharField(),
        "reason": serializers.CharField(required=False),
    },
)


@extend_schema(
    methods=["GET"],
    summary="A namespace's allowed namespaces (editor)",
    responses={200: SettingsOut, 400: None, 403: None},
)
@extend_schema(
    methods=["PUT"],
    summary="Replace the namespaces whose flows may reach this one (admin)",
    request=SettingsIn,
    responses={200: SettingsOut, 400: None, 403: None},
)
@api_view(["GET", "PUT"])
def namespace_settings(request, namespace: str):
    if request.method == "PUT":
        _namespace(request, namespace, roles.ADMIN)
        body = _body(request)
        if "allowed_namespaces" not in body:
            raise ValidationError({"allowed_namespaces": "required: a list of names"})
        try:
            allowed = namespaces.set_allowed_namespaces(
                namespace,
                body["allowed_namespaces"],
                actor=request.user.get_username(),
                via="api",
                reason=_reason(body.get("reason", "")),
            )
        except namespaces.SettingError as exc:
            raise ValidationError({"allowed_namespaces": str(exc)}) from None
        return Response({"namespace": namespace, "allowed_namespaces": allowed})
    _namespace(request, namespace, roles.EDITOR)
    return Response(
        {
            "namespace": namespace,
            "allowed_namespaces": namespaces.allowed_namespaces(namespace),
        }
    )


@extend_schema(
    summary="Names of the secrets flows of this namespace can read, inherited "
    "ones included; never values (editor)",
    responses={
        200: serializers.ListSerializer(child=SecretOut),
        400: None,
        403: None,
        503: None,
    },
)
@api_view(["GET"])
def namespace_secrets(request, namespace: str):
    _namespace(request, namespace, roles.EDITOR)
    return Response([secret_as_dict(r) for r in secrets.list_secrets(namespace)])


@extend_schema(
    methods=["PUT"],
    summary="Create or replace a secret of this namespace (admin); the answer "
    "has no value",
    request=SecretIn,
    responses={200: SecretOut, 201: SecretOut, 400: None, 403: None, 503: None},
)
@extend_schema(
    methods=["DELETE"],
    summary="Delete a secret of this namespace (admin)",
    request=None,
    responses={204: None, 400: None, 403: None, 404: None, 503: None},
)
@api_view(["PUT", "DELETE"])
def namespace_secret(request, namespace: str, name: str):
    _namespace(request, namespace, roles.ADMIN)
    actor = request.user.get_username()
    try:
        if request.method == "DELETE":
            secrets.delete_secret(
                namespace,
                name,
                actor=actor,
                via="api",
                reason=_reason(request.query_params.get("reason", "")),
            )
            return Response(status=status.HTTP_204_NO_CONTENT)
        body = _body(request)
        row, created = secrets.set_secret(
            namespace,
            name,
            body.get("value"),
            actor=actor,
            via="api",
            reason=_reason(body.get("reason", "")),
        )
    except secrets.SecretNotFound as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
    except SecretsKeyMissing as exc:
        return Response(
            {"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE
        )
    except SecretError as exc:
        raise ValidationError({"detail": str(exc)}) from None
    return Response(
        secret_as_dict(
            {
                "name": row.name,
                "namespace": row.namespace,
                "updated_at": row.updated_at,
                "updated_by": row.updated_by,
            }
        ),
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )
