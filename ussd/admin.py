"""Admin for the borrower channels: PINs (a "Reset PIN" action, audited; hashes never shown), raw
Africa's Talking requests, incoming SMS and USSD sessions (read-only, admins only)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.actors import Actor
from core.admin import ReadOnlyAdminMixin
from core.admin.mixins import PortfolioScopedMixin
from core.http import staff_user
from core.models import Borrower, User
from core.phones import mask_phone
from payments.admin.base import AdminsOnlyMixin
from ussd.models import BorrowerPin, InboundRequest, IncomingSms, UssdSessionEnd
from ussd.services.pins import pin_reset


@admin.register(BorrowerPin)
class BorrowerPinAdmin(ReadOnlyAdminMixin, PortfolioScopedMixin, admin.ModelAdmin):
    list_display = ("borrower", "failed_attempts", "locked_until", "updated_at")
    fields = ("borrower", "failed_attempts", "locked_until", "created_at", "updated_at")
    readonly_fields = fields
    search_fields = ("borrower__full_name", "borrower__phones__number")
    actions = ["reset_pin"]

    def limit_to_portfolio(self, queryset: QuerySet, user: User) -> QuerySet:
        return queryset.filter(borrower__in=Borrower.objects.visible_to(user))

    def has_reset_pin_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    @admin.action(
        description="Reset PIN (the borrower creates a new one on their next USSD session)",
        permissions=["reset_pin"],
    )
    def reset_pin(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = Actor.staff(staff_user(request))
        count = sum(
            pin_reset(borrower=record.borrower, actor=actor, reason="PIN reset in the admin")
            for record in queryset.select_related("borrower")
        )
        self.message_user(request, f"{count} PIN(s) reset.", messages.SUCCESS)


@admin.register(InboundRequest)
class InboundRequestAdmin(ReadOnlyAdminMixin, AdminsOnlyMixin, admin.ModelAdmin):
    list_display = ("received_at", "kind", "outcome", "source_ip", "error")
    list_filter = ("kind", "outcome")
    date_hierarchy = "received_at"
    fields = ("received_at", "kind", "outcome", "error", "source_ip", "headers", "body")
    readonly_fields = fields


@admin.register(IncomingSms)
class IncomingSmsAdmin(ReadOnlyAdminMixin, AdminsOnlyMixin, admin.ModelAdmin):
    list_display = ("received_at", "phone_display", "keyword", "text", "borrower")
    list_filter = ("keyword",)
    fields = ("received_at", "provider_id", "phone_display", "to", "text", "keyword", "borrower", "reply")
    readonly_fields = fields

    @admin.display(description="phone")
    def phone_display(self, sms: IncomingSms) -> str:
        return mask_phone(sms.phone)


@admin.register(UssdSessionEnd)
class UssdSessionEndAdmin(ReadOnlyAdminMixin, AdminsOnlyMixin, admin.ModelAdmin):
    list_display = ("received_at", "status", "phone_display", "hops", "duration_ms", "error_message")
    list_filter = ("status",)
    exclude = ("phone",)
    readonly_fields = [
        "session_id",
        "phone_display",
        "service_code",
        "network_code",
        "status",
        "duration_ms",
        "hops",
        "input",
        "last_app_response",
        "error_message",
        "cost",
        "ended_at",
        "received_at",
    ]

    @admin.display(description="phone")
    def phone_display(self, session: UssdSessionEnd) -> str:
        return mask_phone(session.phone)
