"""Admin for loans and repayments, with their money actions (repayment, credit, write-off, reversal)."""

from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from core import services
from core.actors import Actor
from core.admin.actions import form_page, selected_one
from core.admin.mixins import (
    PhoneSearchMixin,
    PortfolioScopedMixin,
    ReadOnlyAdminMixin,
    SavedThroughServicesMixin,
    ServiceErrorsAsMessagesMixin,
    _staff_only,
    money,
)
from core.exceptions import InvalidState
from core.forms import ApplyCreditForm, LoanAddForm, ManualRepaymentForm, ReasonForm
from core.http import staff_user
from core.models import Borrower, Loan, LoanQuerySet, Repayment, User
from core.money import format_money
from core.services.loans import LOAN_EDITABLE_FIELDS


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
        ("Outstanding", money(loan.outstanding)),
        (
            "Penalties / fees / interest / principal",
            " / ".join(
                format_money(part) for part in (loan.penalties, loan.fees, loan.interest, loan.principal)
            ),
        ),
        ("Borrower's credit", money(loan.borrower.credit_balance)),
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
            f"Posted {money(result.applied)} to {loan}; outstanding now {money(result.loan.outstanding)}{status}."
        )
    if credit is not None:
        parts.append(
            f"{money(result.excess)} more than the loan owed went to {loan.borrower}'s credit "
            f"(credit now {money(credit.balance_after)})."
        )
    return " ".join(parts)


@admin.register(Loan)
class LoanAdmin(
    SavedThroughServicesMixin,
    ServiceErrorsAsMessagesMixin,
    PhoneSearchMixin,
    PortfolioScopedMixin,
    admin.ModelAdmin,
):
    add_form = LoanAddForm
    editable_fields = LOAN_EDITABLE_FIELDS
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

    # The admin's querysets come from the model's manager, so they are LoanQuerySets; the stubs type
    # ModelAdmin.get_queryset as returning a plain QuerySet.
    def limit_to_portfolio(self, queryset: QuerySet, user: User) -> QuerySet:
        return cast(LoanQuerySet, queryset).visible_to(user)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = cast(LoanQuerySet, super().get_queryset(request))
        return queryset.with_outstanding().select_related("borrower", "loan_officer")

    @admin.display(description="outstanding", ordering="outstanding_total")
    def outstanding_display(self, loan: Loan) -> str:
        return format_money(loan.outstanding)

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
        if not staff_user(request).is_admin:
            readonly.append("loan_officer")
        return readonly

    def get_inlines(self, request: HttpRequest, obj: Loan | None):
        return [RepaymentInline] if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return super().formfield_for_foreignkey(db_field, request, **_staff_only(db_field, kwargs))

    def create(self, data: dict[str, Any], *, actor: Actor) -> Loan:
        return services.loan_create(
            borrower=data["borrower"],
            principal=data["principal"],
            interest=data["interest"],
            fees=data["fees"],
            disbursed_on=data["disbursed_on"],
            due_date=data["due_date"],
            loan_officer=data["loan_officer"],
            actor=actor,
        )

    def update(self, obj: Loan, *, changes: dict[str, object], actor: Actor) -> None:
        services.loan_update(loan=obj, changes=changes, actor=actor)

    @admin.action(description="Post a manual repayment", permissions=["change"])
    def post_manual_repayment(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        actor = Actor.staff(staff_user(request))
        loan = selected_one(self, request, queryset, "Post a manual repayment")
        if loan is None:
            return None
        return form_page(
            self,
            request,
            loan,
            action="post_manual_repayment",
            title="Post a manual repayment",
            submit_label="Post repayment",
            form_class=ManualRepaymentForm,
            details=_loan_details(loan),
            perform=lambda data: _post_manual_repayment(loan, **data, actor=actor),
        )

    @admin.action(description="Apply credit", permissions=["change"])
    def apply_credit(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        actor = Actor.staff(staff_user(request))

        def perform(loan: Loan, data: dict) -> str:
            result = services.borrower_credit_apply_to_loan(
                loan=loan, amount=data["amount"], reason=data["reason"], actor=actor
            )
            credit_left = Borrower.objects.values_list("credit_balance", flat=True).get(pk=loan.borrower_id)
            return (
                f"Applied {money(result.applied)} of {loan.borrower}'s credit to {loan}; outstanding now "
                f"{money(result.loan.outstanding)}, credit left {money(credit_left)}."
            )

        def initial(loan: Loan) -> dict:
            usable = min(loan.borrower.credit_balance, loan.outstanding)
            return {"amount": usable} if usable > 0 else {}

        loan = selected_one(self, request, queryset, "Apply credit")
        if loan is None:
            return None
        return form_page(
            self,
            request,
            loan,
            action="apply_credit",
            title="Apply credit",
            submit_label="Apply credit",
            form_class=ApplyCreditForm,
            details=_loan_details(loan),
            perform=lambda data: perform(loan, data),
            initial=initial(loan),
        )

    def has_write_off_permission(self, request: HttpRequest) -> bool:
        # Writing a loan off is a credit decision for admins, not something a loan officer does.
        return staff_user(request).is_admin

    @admin.action(description="Write off", permissions=["write_off"])
    def write_off(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        actor = Actor.staff(staff_user(request))

        def perform(loan: Loan, data: dict) -> str:
            loan = services.loan_write_off(loan=loan, reason=data["reason"], actor=actor)
            return f"{loan} written off with {money(loan.outstanding)} outstanding."

        loan = selected_one(self, request, queryset, "Write off")
        if loan is None:
            return None
        return form_page(
            self,
            request,
            loan,
            action="write_off",
            title="Write off",
            submit_label="Write off",
            form_class=ReasonForm,
            details=_loan_details(loan),
            perform=lambda data: perform(loan, data),
        )


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
        actor = Actor.staff(staff_user(request))

        def perform(repayment: Repayment, data: dict) -> str:
            if repayment.source == "mpesa":
                # The payment's allocations must move with it: reverse or re-assign the payment.
                raise InvalidState(
                    f"this posting came from M-Pesa payment {repayment.reference}: reverse it or move it "
                    "from the payment (Payments > M-Pesa transactions), so the payment's record follows"
                )
            reversal = services.repayment_reverse(repayment=repayment, reason=data["reason"], actor=actor)
            loan = reversal.loan
            return (
                f"Reversed {money(repayment.amount)} on {loan}; outstanding now {money(loan.outstanding)} "
                f"({loan.get_status_display().lower()})."
            )

        def details(repayment: Repayment) -> list[tuple[str, object]]:
            return [
                ("Loan", repayment.loan),
                ("Amount", money(repayment.amount)),
                (
                    "Penalties / fees / interest / principal",
                    " / ".join(format_money(part) for part in repayment.split.values()),
                ),
                ("Reference", repayment.reference),
                ("Source", repayment.source),
                ("Posted at", repayment.posted_at),
            ]

        repayment = selected_one(self, request, queryset, "Reverse")
        if repayment is None:
            return None
        return form_page(
            self,
            request,
            repayment,
            action="reverse_repayment",
            title="Reverse",
            submit_label="Reverse repayment",
            form_class=ReasonForm,
            details=details(repayment),
            perform=lambda data: perform(repayment, data),
        )
