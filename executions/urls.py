from django.urls import path

from executions import views
from executions.triggers import views as triggers_views

app_name = "executions"

urlpatterns = [
    path("executions/", views.list_executions, name="list"),
    path("executions/bulk/", views.bulk_executions, name="bulk"),
    path("executions/<int:pk>/", views.show_execution, name="show"),
    path("executions/<int:pk>/status/", views.execution_status, name="status"),
    path("executions/<int:pk>/live/", views.execution_live, name="live"),
    path("executions/<int:pk>/logs/", views.execution_logs, name="logs"),
    path("executions/<int:pk>/file", views.download_file, name="file"),
    path("executions/<int:pk>/kill/", views.kill_execution, name="kill"),
    path("executions/<int:pk>/restart/", views.restart_execution, name="restart"),
    path("executions/<int:pk>/replay/", views.replay_execution, name="replay"),
    path("executions/<int:pk>/resume/", views.resume_execution, name="resume"),
    path(
        "flows/<str:namespace>/<str:flow_id>/execute/",
        views.execute_flow,
        name="execute",
    ),
    path(
        "flows/<str:namespace>/<str:flow_id>/backfill/",
        triggers_views.backfill_flow,
        name="backfill",
    ),
    path("namespaces/", views.list_namespaces, name="namespaces"),
    path("audit/", views.audit_log, name="audit"),
]
