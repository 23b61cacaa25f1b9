"""Reaching one flow on behalf of a user: the pages and the REST API of flows
and executions ask here."""

from __future__ import annotations

from accounts import roles
from flows.models import Flow


def get_flow_for_user(
    request, namespace: str, flow_id: str, role: str = roles.VIEWER
) -> Flow:
    """The live flow if the user sees its namespace (404 otherwise, so names
    don't leak), and PermissionDenied (403) when ``role`` is missing."""
    flow = (
        Flow.objects.live()
        .filter(roles.namespace_q(request.user), namespace=namespace, flow_id=flow_id)
        .first()
    )
    roles.require_visible(
        request.user,
        flow.namespace if flow else None,
        role,
        missing=f"no flow {namespace}.{flow_id}",
    )
    return flow
