from django.contrib import admin

from executions.models import AutoCleanup, CleanupRun


@admin.register(AutoCleanup)
class AutoCleanupAdmin(admin.ModelAdmin):
    list_display = (
        "namespace",
        "enabled",
        "older_than_minutes",
        "daily_cap",
        "updated_at",
    )
    list_filter = ("enabled",)


@admin.register(CleanupRun)
class CleanupRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "created_by",
        "cause",
        "older_than_minutes",
        "namespace",
        "status",
        "dry_run",
    )
    list_filter = ("status", "cause", "dry_run")
    readonly_fields = [f.name for f in CleanupRun._meta.fields]
