"""Reaching one execution on behalf of a user: the pages and the REST API ask here."""

from __future__ import annotations

from accounts import roles
from executions.filters import visible_executions
from executions.models import Execution


def get_execution_for_user(request, pk: int, role: str = roles.VIEWER) -> Execution:
    """The execution if the user may see it (404 otherwise, so names don't
    leak), and PermissionDenied (403) when they see it but lack ``role``."""
    execution = visible_executions(request.user).filter(pk=pk).first()
    roles.require_visible(
        request.user,
        execution.namespace if execution else None,
        role,
        missing=f"no execution {pk}",
    )
    return execution
