from django.urls import path

from flows import namespace_views, views

app_name = "flows"

urlpatterns = [
    path(
        "namespaces/<str:namespace>/settings/",
        namespace_views.namespace_settings,
        name="namespace-settings",
    ),
    path(
        "namespaces/<str:namespace>/settings/allowed/",
        namespace_views.set_allowed,
        name="namespace-allowed",
    ),
    path(
        "namespaces/<str:namespace>/settings/secrets/",
        namespace_views.set_secret,
        name="namespace-secret",
    ),
    path(
        "namespaces/<str:namespace>/settings/secrets/<str:name>/delete/",
        namespace_views.delete_secret,
        name="namespace-secret-delete",
    ),
    path("flows/", views.list_flows, name="list"),
    path("flows/new/", views.edit_flow, name="new"),
    path("flows/validate/", views.validate_flow, name="validate"),
    path("flows/<str:namespace>/<str:flow_id>/", views.show_flow, name="show"),
    path("flows/<str:namespace>/<str:flow_id>/edit/", views.edit_flow, name="edit"),
    path(
        "flows/<str:namespace>/<str:flow_id>/delete/", views.remove_flow, name="delete"
    ),
    path(
        "flows/<str:namespace>/<str:flow_id>/diff/", views.diff_revisions, name="diff"
    ),
]
