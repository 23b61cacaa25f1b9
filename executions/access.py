"""Reaching one execution on behalf of a user: the pages and the REST API ask here."""

from __future__ import annotations

from django.http import Http404

from accounts import roles
from executions.filters import visible_executions
from executions.models import Execution


def get_execution_for_user(request, pk: int, role: str = roles.VIEWER) -> Execution:
    """The execution if the user may see it (404 otherwise, so names don't
    leak), and PermissionDenied (403) when they see it but lack ``role``."""
    execution = visible_executions(request.user).filter(pk=pk).first()
    if execution is None:
        raise Http404(f"no execution {pk}")
    roles.require(request.user, execution.namespace, role)
    return execution
