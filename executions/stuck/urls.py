from django.urls import path

from executions.stuck import views

app_name = "stuck"

urlpatterns = [
    path("", views.stuck_page, name="page"),
    path("count", views.stuck_count_now, name="count"),
    path("preview", views.preview_cleanup, name="preview"),
    path("<int:run_id>/", views.cleanup_run, name="run"),
    path("<int:run_id>/confirm", views.confirm_cleanup, name="confirm"),
]
