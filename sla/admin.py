from django.contrib import admin

from sla.models import Deadline, Digest, SlaMiss, SlaRule


@admin.register(SlaRule)
class SlaRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "namespace",
        "flow_id",
        "slo",
        "sla",
        "expected_runs",
        "expected_cron",
        "on_breach",
        "enabled",
    )
    list_filter = ("enabled", "on_breach")
    search_fields = ("name", "namespace", "flow_id")


@admin.register(SlaMiss)
class SlaMissAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "level",
        "kind",
        "namespace",
        "flow_id",
        "execution_id",
        "threshold",
        "duration",
        "detected_at",
        "digest_id",
    )
    list_filter = ("level", "kind")
    search_fields = ("namespace", "flow_id")
    raw_id_fields = ("execution", "rule", "digest")


@admin.register(Deadline)
class DeadlineAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "execution_id",
        "key",
        "level",
        "threshold",
        "due_at",
        "state",
    )
    list_filter = ("state", "level", "kind")
    raw_id_fields = ("execution", "rule")


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "subject",
        "recipients",
        "state",
        "attempts",
        "created_at",
        "sent_at",
    )
    list_filter = ("state",)
    readonly_fields = ("message_id",)

    def has_delete_permission(self, request, obj=None) -> bool:
        # The outbox is the record of what was emailed; misses are not indexed
        # by digest (that index would slow every burst), so deleting one would
        # scan them all.
        return False
