"""Admin for borrowers, with their phone numbers and loans inline."""

from typing import Any, cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from core import services
from core.actors import Actor
from core.admin.mixins import (
    PhoneSearchMixin,
    PortfolioScopedMixin,
    ReadOnlyAdminMixin,
    SavedThroughServicesMixin,
    ServiceErrorsAsMessagesMixin,
    _staff_only,
)
from core.forms import BorrowerAddForm, BorrowerPhoneForm
from core.http import staff_user
from core.models import Borrower, BorrowerPhone, BorrowerQuerySet, Loan, User
from core.money import format_money
from core.phones import mask_phone
from core.services.borrowers import BORROWER_EDITABLE_FIELDS


class BorrowerPhoneInline(admin.TabularInline):
    """Numbers on file stay as they are (M-Pesa payments are matched on them); a new number goes
    through ``borrower_phone_add`` (see ``BorrowerAdmin.save_formset``)."""

    model = BorrowerPhone
    form = BorrowerPhoneForm
    fields = ("number", "is_primary", "msisdn_hash")
    readonly_fields = ("msisdn_hash",)
    extra = 0
    can_delete = False
    verbose_name = "phone number"

    # A phone is part of its borrower, so the borrower's permissions decide (officers hold none on
    # BorrowerPhone itself).
    def has_view_permission(self, request: HttpRequest, obj: Borrower | None = None) -> bool:
        return request.user.has_perm("core.view_borrower") or request.user.has_perm("core.change_borrower")

    def has_add_permission(self, request: HttpRequest, obj: Borrower | None = None) -> bool:
        return request.user.has_perm("core.change_borrower")

    def has_change_permission(self, request: HttpRequest, obj: Borrower | None = None) -> bool:
        return False


class LoanInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Loan
    fields = ("loan_number", "status", "outstanding_display", "due_date", "loan_officer")
    readonly_fields = fields
    extra = 0
    show_change_link = True

    @admin.display(description="outstanding")
    def outstanding_display(self, loan: Loan) -> str:
        return format_money(loan.outstanding)


@admin.register(Borrower)
class BorrowerAdmin(
    SavedThroughServicesMixin,
    ServiceErrorsAsMessagesMixin,
    PhoneSearchMixin,
    PortfolioScopedMixin,
    admin.ModelAdmin,
):
    add_form = BorrowerAddForm
    editable_fields = BORROWER_EDITABLE_FIELDS
    list_display = ("full_name", "primary_phone_masked", "national_id", "loan_officer", "credit_display")
    list_filter = ("preferred_language", ("loan_officer", admin.RelatedOnlyFieldListFilter))
    search_fields = ("full_name", "national_id")
    ordering = ("full_name", "id")
    phone_search_field = "pk"
    add_fieldsets = (
        (None, {"fields": ("full_name", "phones", "national_id", "preferred_language", "loan_officer")}),
    )
    fieldsets = (
        (None, {"fields": ("full_name", "national_id", "preferred_language", "loan_officer")}),
        ("Money (changes only through loan actions)", {"fields": ("credit_balance",)}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    inlines = [BorrowerPhoneInline, LoanInline]

    # The admin's querysets come from the model's manager, so they are BorrowerQuerySets; the stubs type
    # ModelAdmin.get_queryset as returning a plain QuerySet.
    def limit_to_portfolio(self, queryset: QuerySet, user: User) -> QuerySet:
        return cast(BorrowerQuerySet, queryset).visible_to(user)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("loan_officer").prefetch_related("phones")

    @admin.display(description="primary phone")
    def primary_phone_masked(self, borrower: Borrower) -> str:
        phone = borrower.primary_phone
        return mask_phone(phone.number) if phone else ""

    @admin.display(description="credit", ordering="credit_balance")
    def credit_display(self, borrower: Borrower) -> str:
        return format_money(borrower.credit_balance)

    def get_readonly_fields(self, request: HttpRequest, obj: Borrower | None = None):
        if obj is None:
            return ()
        readonly = ["credit_balance", "created_at", "updated_at"]
        if not staff_user(request).is_admin:
            # Moving a borrower between portfolios is an admin's decision.
            readonly.append("loan_officer")
        return readonly

    def get_inlines(self, request: HttpRequest, obj: Borrower | None):
        # Phones are typed on the add form and handed to borrower_create with the borrower.
        return self.inlines if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return super().formfield_for_foreignkey(db_field, request, **_staff_only(db_field, kwargs))

    def has_delete_permission(self, request: HttpRequest, obj: Borrower | None = None) -> bool:
        return False

    def create(self, data: dict[str, Any], *, actor: Actor) -> Borrower:
        return services.borrower_create(
            full_name=data["full_name"],
            phones=data["phones"],
            national_id=data["national_id"],
            preferred_language=data["preferred_language"],
            loan_officer=data["loan_officer"],
            actor=actor,
        )

    def update(self, obj: Borrower, *, changes: dict[str, object], actor: Actor) -> None:
        services.borrower_update(borrower=obj, changes=changes, actor=actor)

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is not BorrowerPhone:
            super().save_formset(request, form, formset, change)
            return
        actor = Actor.staff(staff_user(request))
        formset.new_objects = [
            services.borrower_phone_add(
                borrower=form.instance,
                number=phone_form.cleaned_data["number"],
                make_primary=phone_form.cleaned_data.get("is_primary", False),
                actor=actor,
            )
            for phone_form in formset.extra_forms
            if phone_form.has_changed()
        ]
        # The admin's change message reads these; existing numbers are never changed here.
        formset.changed_objects, formset.deleted_objects = [], []
