from django.contrib import admin

from accounts.models import AccountEvent, ApiToken, Role


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ("user", "role", "namespace", "granted_at", "granted_by")
    list_filter = ("role",)
    search_fields = ("user__username", "namespace")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "user",
        "hint",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = ("digest", "hint")


@admin.register(AccountEvent)
class AccountEventAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "via", "username", "action", "detail", "reason")
    list_filter = ("action", "via")
    search_fields = ("username", "actor")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the audit trail is append-only
