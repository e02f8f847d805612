"""Operational incidents (``core.services.ops``): the record of every alert sent to admins and when it
cleared. Read-only: incidents open and resolve themselves as the checks find."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin.mixins import ReadOnlyAdminMixin
from core.models import OpsIncident


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("open", "resolved"):
            return queryset.filter(resolved_at__isnull=self.value() == "open")
        return queryset


@admin.register(OpsIncident)
class OpsIncidentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("opened_at", "alert", "key", "resolved_at", "detail")
    list_filter = (OpenFilter, "alert")
    date_hierarchy = "opened_at"
    fields = ("alert", "key", "opened_at", "detail", "resolved_at", "resolution")
    readonly_fields = fields
