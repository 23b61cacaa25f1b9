from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from accounts import views as account_views
from executions.stuck import api as stuck_api
from executions.triggers import webhook
from orchestra import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", account_views.account, name="account"),
    path("account/tokens/", account_views.tokens, name="account-tokens"),
    path(
        "account/tokens/<int:pk>/revoke",
        account_views.revoke_token,
        name="account-token-revoke",
    ),
    path("account/password/", account_views.change_password, name="account-password"),
    path("api/health", login_not_required(views.health), name="health"),
    path("api/me", account_views.me, name="api-me"),
    path("stuck/", include("executions.stuck.urls")),
    path("api/executions/cleanup", stuck_api.cleanup_api, name="api-cleanup"),
    path(
        "api/executions/webhook/<str:namespace>/<str:flow_id>/<str:key>",
        webhook.webhook,
        name="api-webhook",
    ),
    path("", views.overview, name="home"),
    path("", include("executions.urls")),
    path("", include("flows.urls")),
    path("api/", include("orchestra.api_urls")),
]
urlpatterns += [path("", include("sla.urls"))]

handler400 = "orchestra.api.json_bad_request"
handler403 = "orchestra.api.json_permission_denied"
handler404 = "orchestra.api.json_not_found"
handler500 = "orchestra.api.json_server_error"
