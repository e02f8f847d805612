"""The outbox (core's ``OutboxMessage``), registered here because the payments engine is what fills
it: receipts, notes to officers, alerts. Read-only, with "Retry now" for what did not go out."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin import ReadOnlyAdminMixin
from core.http import staff_user
from core.models import OutboxMessage
from core.phones import mask_phone
from core.services.outbox import outbox_retry
from payments.admin.base import AdminsOnlyMixin


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, AdminsOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "channel",
        "recipient_display",
        "status",
        "attempts",
        "sent_at",
        "provider_id",
        "delivery_status",
        "last_error",
    )
    list_filter = ("channel", "status", "delivery_status")
    date_hierarchy = "created_at"
    search_fields = ("provider_id",)
    actions = ["retry_now"]
    # The raw recipient is left out: an SMS recipient is a phone number and shows masked.
    fields = (
        "created_at",
        "channel",
        "recipient_display",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "provider_id",
        "delivery_status",
        "delivery_error",
        "delivery_reported_at",
        "last_error",
        "body",
        "borrower",
        "user",
        "dedupe_key",
        "context",
    )
    readonly_fields = fields

    @admin.display(description="recipient", ordering="recipient")
    def recipient_display(self, message: OutboxMessage) -> str:
        return (
            mask_phone(message.recipient)
            if message.channel == OutboxMessage.Channel.SMS
            else message.recipient
        )

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return staff_user(request).is_admin and request.user.has_perm("core.change_outboxmessage")

    @admin.action(description="Retry now (pending or failed)", permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        selected = list(queryset.values_list("pk", flat=True))
        requeued = outbox_retry(message_ids=selected)
        text = f"Queued {len(requeued)} message(s) for delivery now."
        if len(requeued) < len(selected):
            text += (
                f" {len(selected) - len(requeued)} were skipped: only pending or failed messages are retried."
            )
        self.message_user(request, text, messages.SUCCESS if requeued else messages.WARNING)
