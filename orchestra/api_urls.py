"""Everything under /api/: each app's endpoints, the OpenAPI schema and its docs page."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from executions import api as executions_api
from executions.triggers import api as triggers_api
from flows import api as flows_api
from flows import namespace_api

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script,
    # so the Content-Security-Policy holds on the docs page too.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema"),
        name="api-docs",
    ),
    path("flows", flows_api.flows, name="api-flows"),
    path("flows/validate", flows_api.validate_flow, name="api-flows-validate"),
    path("flows/<str:namespace>/<str:flow_id>", flows_api.flow_detail, name="api-flow"),
    path(
        "flows/<str:namespace>/<str:flow_id>/revisions",
        flows_api.flow_revisions,
        name="api-flow-revisions",
    ),
    path(
        "flows/<str:namespace>/<str:flow_id>/triggers/<str:trigger_id>/backfill",
        triggers_api.backfill_trigger,
        name="api-flow-backfill",
    ),
    path(
        "namespaces/<str:namespace>/settings",
        namespace_api.namespace_settings,
        name="api-namespace-settings",
    ),
    path(
        "namespaces/<str:namespace>/secrets",
        namespace_api.namespace_secrets,
        name="api-namespace-secrets",
    ),
    path(
        "namespaces/<str:namespace>/secrets/<str:name>",
        namespace_api.namespace_secret,
        name="api-namespace-secret",
    ),
    path("executions", executions_api.search_executions, name="api-executions"),
    path("executions/bulk", executions_api.bulk_executions, name="api-executions-bulk"),
    path("executions/<int:pk>", executions_api.execution_detail, name="api-execution"),
    path(
        "executions/<int:pk>/logs",
        executions_api.execution_logs,
        name="api-execution-logs",
    ),
    path(
        "executions/<int:pk>/follow",
        executions_api.follow_execution,
        name="api-execution-follow",
    ),
    path(
        "executions/<int:pk>/file",
        executions_api.execution_file,
        name="api-execution-file",
    ),
    path(
        "executions/<int:pk>/kill",
        executions_api.kill_execution,
        name="api-execution-kill",
    ),
    path(
        "executions/<int:pk>/restart",
        executions_api.restart_execution,
        name="api-execution-restart",
    ),
    path(
        "executions/<int:pk>/replay",
        executions_api.replay_execution,
        name="api-execution-replay",
    ),
    path(
        "executions/<int:pk>/resume",
        executions_api.resume_execution,
        name="api-execution-resume",
    ),
    path(
        "executions/<str:namespace>/<str:flow_id>",
        executions_api.execute_flow,
        name="api-execute",
    ),
]
