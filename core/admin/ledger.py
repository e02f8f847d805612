"""Admin for the credit ledger and the audit trail: read-only."""

from django.contrib import admin
from django.db.models import Q, QuerySet

from core.admin.mixins import PortfolioScopedMixin, ReadOnlyAdminMixin
from core.models import AuditEvent, Borrower, CreditEntry, Loan, User
from core.phones import mask_phone


@admin.register(CreditEntry)
class CreditEntryAdmin(ReadOnlyAdminMixin, PortfolioScopedMixin, admin.ModelAdmin):
    list_display = ("created_at", "borrower", "amount", "balance_after", "reference", "reason")
    search_fields = ("reference", "borrower__full_name")
    list_select_related = ("borrower",)

    def limit_to_portfolio(self, queryset: QuerySet, user: User) -> QuerySet:
        return queryset.filter(borrower__in=Borrower.objects.visible_to(user))


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, PortfolioScopedMixin, admin.ModelAdmin):
    list_display = ("created_at", "actor", "action", "loan", "amount", "reason")
    list_filter = ("action", "actor_type")
    search_fields = ("loan__loan_number", "reason")
    list_select_related = ("loan",)
    date_hierarchy = "created_at"
    # actor_label holds a borrower's phone number; the page shows it masked through ``actor``.
    fields = (
        "created_at",
        "actor",
        "actor_user",
        "action",
        "borrower",
        "loan",
        "object_type",
        "object_id",
        "amount",
        "reason",
        "data",
    )
    readonly_fields = fields

    def limit_to_portfolio(self, queryset: QuerySet, user: User) -> QuerySet:
        return queryset.filter(
            Q(loan__in=Loan.objects.visible_to(user)) | Q(borrower__in=Borrower.objects.visible_to(user))
        )

    @admin.display(description="actor", ordering="actor_label")
    def actor(self, event: AuditEvent) -> str:
        label = (
            mask_phone(event.actor_label)
            if event.actor_type == AuditEvent.ActorType.BORROWER
            else event.actor_label
        )
        return f"{event.get_actor_type_display()}: {label}"
