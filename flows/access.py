"""Reaching one flow on behalf of a user: the pages and the REST API of flows
and executions ask here."""

from __future__ import annotations

from django.http import Http404

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
    if flow is None:
        raise Http404(f"no flow {namespace}.{flow_id}")
    roles.require(request.user, namespace, role)
    return flow
