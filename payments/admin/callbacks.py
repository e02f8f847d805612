"""Inbound Daraja requests exactly as they arrived: evidence, never edited. Admins only (the bodies
carry payers' numbers and names). A confirmation that became a payment is kept on the payment's own
page; here are validations and the confirmations that did not (malformed, refused, duplicates)."""

import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from core.admin import ReadOnlyAdminMixin
from payments.admin.base import AdminsOnlyMixin, pretty_json
from payments.models import CallbackRequest, MpesaTransaction


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

    @admin.display(description="headers")
    def headers_pretty(self, callback: CallbackRequest) -> str:
        return pretty_json(callback.headers)

    @admin.display(description="body")
    def body_pretty(self, callback: CallbackRequest) -> str:
        # A malformed body is stored too; it is shown as received, escaped.
        return pretty_json(callback.body) if callback.body else "(empty)"

    @admin.display(description="payment")
    def payments(self, callback: CallbackRequest) -> str:
        """The payment a confirmation's TransID names (the one a duplicate repeated), if stored."""
        if callback.kind != CallbackRequest.Kind.CONFIRMATION:
            return "—"
        try:
            trans_id = json.loads(callback.body).get("TransID")
        except (ValueError, AttributeError):
            return "—"
        tx = MpesaTransaction.objects.filter(trans_id=str(trans_id)).only("pk", "trans_id").first()
        if tx is None:
            return "—"
        url = reverse("admin:payments_mpesatransaction_change", args=[tx.pk])
        return format_html('<a href="{}">{}</a>', url, tx.trans_id)
