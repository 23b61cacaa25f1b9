from django.urls import path

from sla import api, views

app_name = "sla"

urlpatterns = [
    path("sla/", views.rule_list, name="rules"),
    path("sla/rules/new/", views.rule_create, name="rule_create"),
    path("sla/rules/validate/", views.rule_validate, name="rule_validate"),
    path("sla/rules/<int:pk>/edit/", views.rule_edit, name="rule_edit"),
    path("sla/rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
    path("sla/misses/", views.miss_list, name="misses"),
    path("sla/compliance/", views.compliance, name="compliance"),
    path("sla/digest/", views.digest_preview, name="digest"),
    path("sla/flows/<str:namespace>/<str:flow_id>/", views.flow_sla, name="flow"),
    path("sla/executions/<int:pk>/", views.execution_sla, name="execution"),
    path("api/sla/rules", api.rules, name="api_rules"),
    path("api/sla/rules/applying", api.applying, name="api_applying"),
    path("api/sla/rules/<int:pk>", api.rule, name="api_rule"),
    path("api/sla/misses", api.misses, name="api_misses"),
]
