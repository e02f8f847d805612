"""Admin for the staff bot: updates as received, alerts and their buttons (all read-only)."""

from django.contrib import admin

from bots.models import AlertMessage, CallbackAction, PaymentAlert, TelegramUpdate
from core.admin.mixins import ReadOnlyAdminMixin


@admin.register(TelegramUpdate)
class TelegramUpdateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("update_id", "received_at", "status", "redeliveries", "error")
    list_filter = ("status",)
    search_fields = ("=update_id",)
    fields = (
        "update_id",
        "received_at",
        "source_ip",
        "status",
        "redeliveries",
        "processed_at",
        "error",
        "headers",
        "body",
    )
    readonly_fields = fields


class AlertMessageInline(admin.TabularInline):
    model = AlertMessage
    fields = ("user", "chat_id", "message_id", "sent_at", "edited_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PaymentAlert)
class PaymentAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("trans_id", "kind", "created_at", "resolved_at", "outcome")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("=trans_id",)
    fields = list_display
    readonly_fields = fields
    inlines = [AlertMessageInline]


@admin.register(CallbackAction)
class CallbackActionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "verb",
        "trans_id",
        "loan_number",
        "owner",
        "created_at",
        "expires_at",
        "used_at",
        "used_by",
    )
    list_filter = ("verb",)
    search_fields = ("=trans_id",)
    exclude = ("token",)
    readonly_fields = (
        "verb",
        "trans_id",
        "alert",
        "loan_number",
        "owner",
        "chat_id",
        "prompt_message_id",
        "created_at",
        "expires_at",
        "used_at",
        "used_by",
        "outcome",
    )
