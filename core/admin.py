"""Django admin for the lending core.

Money is read-only here. Loans and borrowers are added through their services; every correction
is an admin action that asks for what it needs and a reason on an intermediate page, then calls a
service with the member of staff as the actor, so it lands in the audit trail. Officers see only
their own portfolio. Phone numbers are masked in lists.
"""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db import models
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone

from core import services
from core.actors import Actor
from core.exceptions import HavenError
from core.forms import (
    ApplyCreditForm,
    BorrowerAddForm,
    BorrowerPhoneForm,
    LoanAddForm,
    ManualRepaymentForm,
    ReasonForm,
    StaffChangeForm,
    StaffCreationForm,
)
from core.models import ApiToken, AuditEvent, Borrower, BorrowerPhone, CreditEntry, Loan, Repayment, User
from core.money import format_money
from core.phones import mask_phone, try_normalize_phone

ACTION_TEMPLATE = "admin/core/action_form.html"


def _money(amount: Decimal | None) -> str:
    return "" if amount is None else f"KES {format_money(amount)}"


def _adopt(obj: models.Model, created: models.Model) -> None:
    """Point the admin's unsaved instance at the row a service created, so the admin's change log
    and its redirect refer to that row."""
    obj.pk = created.pk
    obj.refresh_from_db()
    obj._state.adding = False


def _staff_only(db_field: models.ForeignKey, kwargs: dict) -> dict:
    if db_field.name == "loan_officer":
        kwargs["queryset"] = User.objects.filter(is_staff=True, is_active=True).order_by("username")
    return kwargs


class ReadOnlyAdminMixin:
    """Rows written only by services: they can be viewed, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class PortfolioScopedMixin:
    """Officers see their own portfolio only; admins see everything. Change pages and actions go
    through ``get_queryset`` too, so another officer's rows are "not found" rather than forbidden."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        return queryset if request.user.is_admin else self.limit_to_portfolio(queryset, request.user)

    def limit_to_portfolio(self, queryset: QuerySet, user: User) -> QuerySet:
        raise NotImplementedError


class ServiceErrorsAsMessagesMixin:
    """A service can still refuse a form that validated (a phone number taken a moment ago by someone
    else). The admin saves inside one transaction, so the exception rolls the save back; show it as
    a message instead of a 500."""

    def changeform_view(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)
        except HavenError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class PhoneSearchMixin:
    """Search also finds borrowers by phone number written any way ("0712 345 678" finds
    +254712345678). ``phone_search_field`` names the borrower on the searched model."""

    phone_search_field = "pk"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        e164 = try_normalize_phone(search_term)
        if e164:
            # A subquery rather than a join: a borrower with two phones must not list twice.
            owners = BorrowerPhone.objects.filter(number=e164).values("borrower_id")
            results |= queryset.filter(**{f"{self.phone_search_field}__in": owners})
        return results, may_have_duplicates


def _single_object_action(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    submit_label: str,
    form_class: type[forms.Form],
    details: Callable[[models.Model], list[tuple[str, object]]],
    perform: Callable[[models.Model, dict], str],
    initial: Callable[[models.Model], dict] | None = None,
) -> HttpResponse | None:
    """Run a money action on exactly one selected row: show its form page, then call ``perform``.

    The page posts back to the changelist with the action and the selected id, plus ``apply``. A
    ``HavenError`` from the service becomes an error message; returning None sends the user back
    to the changelist, where the message shows.
    """
    opts = model_admin.model._meta
    if queryset.count() != 1:
        model_admin.message_user(
            request,
            f"“{title}” works on one {opts.verbose_name} at a time: select exactly one.",
            messages.ERROR,
        )
        return None
    obj = queryset.get()
    if "apply" in request.POST:
        form = form_class(request.POST)
        if form.is_valid():
            try:
                message = perform(obj, form.cleaned_data)
            except HavenError as exc:
                model_admin.message_user(request, f"{obj}: {exc.detail}", messages.ERROR)
            else:
                model_admin.message_user(request, message, messages.SUCCESS)
            return None
    else:
        form = form_class(initial=initial(obj) if initial else None)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{title}: {obj}",
        "opts": opts,
        "object": obj,
        "details": details(obj),
        "form": form,
        "media": model_admin.media + form.media,
        "action": action,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "submit_label": submit_label,
    }
    return TemplateResponse(request, ACTION_TEMPLATE, context)


# --- Staff ------------------------------------------------------------------------------------------


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    form = StaffChangeForm
    add_form = StaffCreationForm
    fieldsets = (*UserAdmin.fieldsets, ("Lending", {"fields": ("role", "phone")}))
    add_fieldsets = (*UserAdmin.add_fieldsets, ("Lending", {"fields": ("role", "phone")}))
    list_display = (*UserAdmin.list_display, "role")
    list_filter = ("role", *UserAdmin.list_filter)


# --- Borrowers --------------------------------------------------------------------------------------


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

    def has_delete_permission(self, request: HttpRequest, obj: Borrower | None = None) -> bool:
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
class BorrowerAdmin(ServiceErrorsAsMessagesMixin, PhoneSearchMixin, PortfolioScopedMixin, admin.ModelAdmin):
    add_form = BorrowerAddForm
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

    def limit_to_portfolio(self, queryset: QuerySet, user: User) -> QuerySet:
        return queryset.visible_to(user)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("loan_officer").prefetch_related("phones")

    @admin.display(description="primary phone")
    def primary_phone_masked(self, borrower: Borrower) -> str:
        phone = borrower.primary_phone
        return mask_phone(phone.number) if phone else ""

    @admin.display(description="credit", ordering="credit_balance")
    def credit_display(self, borrower: Borrower) -> str:
        return format_money(borrower.credit_balance)

    def get_fieldsets(self, request: HttpRequest, obj: Borrower | None = None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_form(self, request: HttpRequest, obj: Borrower | None = None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Borrower | None = None):
        if obj is None:
            return ()
        readonly = ["credit_balance", "created_at", "updated_at"]
        if not request.user.is_admin:
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

    def save_model(self, request: HttpRequest, obj: Borrower, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        created = services.borrower_create(
            full_name=data["full_name"],
            phones=data["phones"],
            national_id=data["national_id"],
            preferred_language=data["preferred_language"],
            loan_officer=data["loan_officer"],
            actor=Actor.staff(request.user),
        )
        _adopt(obj, created)

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is not BorrowerPhone:
            super().save_formset(request, form, formset, change)
            return
        actor = Actor.staff(request.user)
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


# --- Loans ------------------------------------------------------------------------------------------


class DueFilter(admin.SimpleListFilter):
    title = "due date"
    parameter_name = "due"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin):
        return [
            ("overdue", "Overdue"),
            ("today", "Due today"),
            ("week", "Due in the next 7 days"),
            ("later", "Due later"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        today = timezone.localdate()
        week = today + timedelta(days=7)
        match self.value():
            case "overdue":
                return queryset.filter(status=Loan.Status.ACTIVE, due_date__lt=today)
            case "today":
                return queryset.filter(due_date=today)
            case "week":
                return queryset.filter(due_date__gt=today, due_date__lte=week)
            case "later":
                return queryset.filter(due_date__gt=week)
        return queryset


class RepaymentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Repayment
    fk_name = "loan"
    fields = (
        "kind",
        "amount",
        "penalties",
        "fees",
        "interest",
        "principal",
        "reference",
        "source",
        "posted_at",
    )
    readonly_fields = fields
    extra = 0
    show_change_link = True


def _loan_details(loan: Loan) -> list[tuple[str, object]]:
    return [
        ("Borrower", loan.borrower),
        ("Status", loan.get_status_display()),
        ("Due date", loan.due_date),
        ("Outstanding", _money(loan.outstanding)),
        (
            "Penalties / fees / interest / principal",
            " / ".join(
                format_money(part) for part in (loan.penalties, loan.fees, loan.interest, loan.principal)
            ),
        ),
        ("Borrower's credit", _money(loan.borrower.credit_balance)),
    ]


def _post_manual_repayment(loan: Loan, *, amount: Decimal, reference: str, reason: str, actor: Actor) -> str:
    """Post to the loan; what the loan cannot take goes to the borrower's credit."""
    result, credit = services.repayment_receive(
        loan=loan, amount=amount, actor=actor, source="manual", reference=reference, reason=reason
    )
    parts = []
    if result.applied > 0:
        status = " (paid)" if result.loan.status == Loan.Status.PAID else ""
        parts.append(
            f"Posted {_money(result.applied)} to {loan}; outstanding now {_money(result.loan.outstanding)}{status}."
        )
    if credit is not None:
        parts.append(
            f"{_money(result.excess)} more than the loan owed went to {loan.borrower}'s credit "
            f"(credit now {_money(credit.balance_after)})."
        )
    return " ".join(parts)


@admin.register(Loan)
class LoanAdmin(ServiceErrorsAsMessagesMixin, PhoneSearchMixin, PortfolioScopedMixin, admin.ModelAdmin):
    add_form = LoanAddForm
    list_display = ("loan_number", "borrower", "outstanding_display", "status", "due_date", "loan_officer")
    list_filter = ("status", ("loan_officer", admin.RelatedOnlyFieldListFilter), DueFilter)
    search_fields = ("loan_number", "borrower__full_name")
    phone_search_field = "borrower_id"
    autocomplete_fields = ("borrower",)
    actions = ["post_manual_repayment", "apply_credit", "write_off"]
    add_fieldsets = (
        (
            None,
            {
                "fields": (
                    "borrower",
                    "principal",
                    "interest",
                    "fees",
                    "disbursed_on",
                    "due_date",
                    "loan_officer",
                )
            },
        ),
    )
    fieldsets = (
        (None, {"fields": ("loan_number", "borrower", "status", "loan_officer", "disbursed_on", "due_date")}),
        (
            "Outstanding (change it with the actions on the loan list)",
            {"fields": ("outstanding_display", "penalties", "fees", "interest", "principal")},
        ),
        ("Record", {"fields": ("principal_disbursed", "paid_at", "created_at", "updated_at")}),
    )
    _money_fields = ("principal_disbursed", "penalties", "fees", "interest", "principal")

    def limit_to_portfolio(self, queryset: QuerySet, user: User) -> QuerySet:
        return queryset.visible_to(user)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_outstanding().select_related("borrower", "loan_officer")

    @admin.display(description="outstanding", ordering="outstanding_total")
    def outstanding_display(self, loan: Loan) -> str:
        return format_money(loan.outstanding)

    def get_fieldsets(self, request: HttpRequest, obj: Loan | None = None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_form(self, request: HttpRequest, obj: Loan | None = None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Loan | None = None):
        if obj is None:
            return ()
        readonly = [
            "loan_number",
            "borrower",
            "status",
            "disbursed_on",
            "outstanding_display",
            *self._money_fields,
            "paid_at",
            "created_at",
            "updated_at",
        ]
        if not request.user.is_admin:
            readonly.append("loan_officer")
        return readonly

    def get_inlines(self, request: HttpRequest, obj: Loan | None):
        return [RepaymentInline] if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return super().formfield_for_foreignkey(db_field, request, **_staff_only(db_field, kwargs))

    def has_delete_permission(self, request: HttpRequest, obj: Loan | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Loan, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        created = services.loan_create(
            borrower=data["borrower"],
            principal=data["principal"],
            interest=data["interest"],
            fees=data["fees"],
            disbursed_on=data["disbursed_on"],
            due_date=data["due_date"],
            loan_officer=data["loan_officer"],
            actor=Actor.staff(request.user),
        )
        _adopt(obj, created)

    @admin.action(description="Post a manual repayment", permissions=["change"])
    def post_manual_repayment(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return _single_object_action(
            self,
            request,
            queryset,
            action="post_manual_repayment",
            title="Post a manual repayment",
            submit_label="Post repayment",
            form_class=ManualRepaymentForm,
            details=_loan_details,
            perform=lambda loan, data: _post_manual_repayment(loan, **data, actor=Actor.staff(request.user)),
        )

    @admin.action(description="Apply credit", permissions=["change"])
    def apply_credit(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        def perform(loan: Loan, data: dict) -> str:
            result = services.borrower_credit_apply_to_loan(
                loan=loan, amount=data["amount"], reason=data["reason"], actor=Actor.staff(request.user)
            )
            credit_left = Borrower.objects.values_list("credit_balance", flat=True).get(pk=loan.borrower_id)
            return (
                f"Applied {_money(result.applied)} of {loan.borrower}'s credit to {loan}; outstanding now "
                f"{_money(result.loan.outstanding)}, credit left {_money(credit_left)}."
            )

        def initial(loan: Loan) -> dict:
            usable = min(loan.borrower.credit_balance, loan.outstanding)
            return {"amount": usable} if usable > 0 else {}

        return _single_object_action(
            self,
            request,
            queryset,
            action="apply_credit",
            title="Apply credit",
            submit_label="Apply credit",
            form_class=ApplyCreditForm,
            details=_loan_details,
            perform=perform,
            initial=initial,
        )

    @admin.action(description="Write off", permissions=["change"])
    def write_off(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        def perform(loan: Loan, data: dict) -> str:
            loan = services.loan_write_off(loan=loan, reason=data["reason"], actor=Actor.staff(request.user))
            return f"{loan} written off with {_money(loan.outstanding)} outstanding."

        return _single_object_action(
            self,
            request,
            queryset,
            action="write_off",
            title="Write off",
            submit_label="Write off",
            form_class=ReasonForm,
            details=_loan_details,
            perform=perform,
        )


# --- Repayments, credit, audit ----------------------------------------------------------------------


@admin.register(Repayment)
class RepaymentAdmin(ReadOnlyAdminMixin, PortfolioScopedMixin, admin.ModelAdmin):
    list_display = ("id", "loan", "kind", "amount", "reference", "source", "posted_at", "is_reversed")
    list_filter = ("kind", "source")
    search_fields = ("reference", "loan__loan_number")
    date_hierarchy = "posted_at"
    actions = ["reverse_repayment"]

    def limit_to_portfolio(self, queryset: QuerySet, user: User) -> QuerySet:
        return queryset.filter(loan__in=Loan.objects.visible_to(user))

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # "reversal" (the reverse one-to-one) in the join lets is_reversed answer without a query per row.
        return super().get_queryset(request).select_related("loan", "reversal")

    @admin.display(boolean=True, description="reversed")
    def is_reversed(self, repayment: Repayment) -> bool:
        return repayment.is_reversed

    def has_reverse_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("core.change_repayment")

    @admin.action(description="Reverse", permissions=["reverse"])
    def reverse_repayment(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        def perform(repayment: Repayment, data: dict) -> str:
            reversal = services.repayment_reverse(
                repayment=repayment, reason=data["reason"], actor=Actor.staff(request.user)
            )
            loan = reversal.loan
            return (
                f"Reversed {_money(repayment.amount)} on {loan}; outstanding now {_money(loan.outstanding)} "
                f"({loan.get_status_display().lower()})."
            )

        def details(repayment: Repayment) -> list[tuple[str, object]]:
            return [
                ("Loan", repayment.loan),
                ("Amount", _money(repayment.amount)),
                (
                    "Penalties / fees / interest / principal",
                    " / ".join(format_money(part) for part in repayment.split.values()),
                ),
                ("Reference", repayment.reference),
                ("Source", repayment.source),
                ("Posted at", repayment.posted_at),
            ]

        return _single_object_action(
            self,
            request,
            queryset,
            action="reverse_repayment",
            title="Reverse",
            submit_label="Reverse repayment",
            form_class=ReasonForm,
            details=details,
            perform=perform,
        )


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


# --- API tokens -------------------------------------------------------------------------------------


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Tokens are made with ``manage.py`` (the token is shown once); here they are listed and revoked."""

    list_display = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix", "user__username")
    ordering = ("-created_at", "-id")
    list_select_related = ("user",)
    fields = list_display
    readonly_fields = fields
    actions = ["revoke"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("core.change_apitoken")

    @admin.action(description="Revoke", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        selected = queryset.count()
        revoked = services.api_token_revoke(tokens=queryset)
        message = f"Revoked {revoked} token(s)."
        if revoked < selected:
            message += f" {selected - revoked} were already revoked."
        self.message_user(request, message, messages.SUCCESS)
