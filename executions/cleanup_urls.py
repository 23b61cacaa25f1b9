from django.urls import path

from executions import cleanup_views

app_name = "stuck"

urlpatterns = [
    path("", cleanup_views.stuck_page, name="page"),
    path("preview", cleanup_views.preview_cleanup, name="preview"),
    path("<int:run_id>/", cleanup_views.cleanup_run, name="run"),
    path("<int:run_id>/confirm", cleanup_views.confirm_cleanup, name="confirm"),
]
