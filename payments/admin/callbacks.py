"""Inbound Daraja callbacks exactly as they arrived: evidence, never edited. Admins only (the
bodies carry payers' numbers and names)."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html_join

from core.admin import ReadOnlyAdminMixin
from payments.admin.base import AdminsOnlyMixin, pretty_json
from payments.models import CallbackRequest


@admin.register(CallbackRequest)
class CallbackRequestAdmin(ReadOnlyAdminMixin, AdminsOnlyMixin, admin.ModelAdmin):
    list_display = ("received_at", "kind", "outcome", "result_code", "source_ip", "config")
    list_filter = ("kind", "outcome", "config")
    date_hierarchy = "received_at"
    search_fields = ("result_code", "source_ip")
    list_select_related = ("config",)
    fields = (
        "received_at",
        "kind",
        "config",
        "source_ip",
        "outcome",
        "result_code",
        "error",
        "payments",
        "headers_pretty",
        "body_pretty",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("transactions")

    @admin.display(description="headers")
    def headers_pretty(self, callback: CallbackRequest) -> str:
        return pretty_json(callback.headers)

    @admin.display(description="body")
    def body_pretty(self, callback: CallbackRequest) -> str:
        # A malformed body is stored too; it is shown as received, escaped.
        return pretty_json(callback.body) if callback.body else "(empty)"

    @admin.display(description="payments")
    def payments(self, callback: CallbackRequest) -> str:
        rows = [
            (reverse("admin:payments_mpesatransaction_change", args=[tx.pk]), tx.trans_id)
            for tx in callback.transactions.all()
        ]
        return format_html_join(", ", '<a href="{}">{}</a>', rows) if rows else "—"
