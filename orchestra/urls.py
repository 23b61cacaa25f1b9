from django.contrib import admin
from django.urls import path

from orchestra import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health", views.health, name="health"),
]
