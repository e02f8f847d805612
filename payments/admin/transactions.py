"""M-Pesa payments: read-only records with what happened to them, and the staff actions that fix
them (reprocess, assign to a loan, mark reviewed, reverse), each a service called with the member
of staff as the actor. Officers see their own portfolio's payments only."""

from typing import cast

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.actors import Actor
from core.admin import ReadOnlyAdminMixin
from core.admin.actions import form_page, selected_one
from core.admin.mixins import money
from core.exceptions import HavenError, InvalidAmount
from core.http import staff_user
from core.models import AuditEvent, Loan
from core.money import to_money
from core.phones import mask_phone, try_normalize_phone
from payments.admin.base import pretty_json
from payments.filters import transactions_filter
from payments.forms import AssignToLoanForm, ReprocessForm, ReverseForm, ReviewNoteForm, StatementUploadForm
from payments.models import (
    Allocation,
    CallbackRequest,
    MpesaConfiguration,
    MpesaTransaction,
    MpesaTransactionQuerySet,
)
from payments.selectors import transaction_audit_events
from payments.services import (
    TransientProcessingError,
    transaction_assign,
    transaction_mark_reviewed,
    transaction_reprocess,
    transaction_reverse,
)
from payments.services.statements import statement_import_upload
from payments.services.status import status_query_request

RAW_REQUEST = "Confirmation request as received"
# Each status question is one Daraja call made while the admin waits.
STATUS_QUERY_LIMIT = 20
BULK_ACTION_TEMPLATE = "admin/payments/bulk_action_form.html"
BULK_REPROCESS_LIMIT = 200


class AllocationInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Allocation
    fields = ("target", "loan_link", "amount", "credit_entry", "created_at", "reversed")
    readonly_fields = fields
    extra = 0
    can_delete = False

    # Allocations are part of their payment: whoever may view the payment sees them.
    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("payments.view_mpesatransaction") or request.user.has_perm(
            "payments.change_mpesatransaction"
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("loan")

    @admin.display(description="loan")
    def loan_link(self, allocation: Allocation) -> str:
        if allocation.loan is None:
            return "—"
        # The inline has no request; the link shows for everyone and the loan page scopes itself.
        url = reverse("admin:core_loan_change", args=[allocation.loan_id])
        return format_html('<a href="{}">{}</a>', url, allocation.loan.loan_number)

    @admin.display(boolean=True, description="reversed")
    def reversed(self, allocation: Allocation) -> bool:
        return allocation.reversed_at is not None


@admin.register(MpesaTransaction)
class MpesaTransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "trans_id",
        "trans_time",
        "amount",
        "payer_phone",
        "bill_reference",
        "borrower",
        "status",
        "match_strategy",
        "source",
        "reviewed",
    )
    list_filter = (
        "status",
        "source",
        "match_strategy",
        "identified_by",
        ("reviewed_at", admin.EmptyFieldListFilter),
        "config",
    )
    date_hierarchy = "trans_time"
    search_fields = ("trans_id", "bill_reference", "borrower__full_name")
    list_select_related = ("borrower",)
    inlines = [AllocationInline]
    actions = ["reprocess", "assign_to_loan", "mark_reviewed", "reverse_payment", "ask_daraja_status"]
    fieldsets = (
        (
            "Payment (as M-Pesa sent it)",
            {
                "fields": (
                    "trans_id",
                    "transaction_type",
                    "trans_time",
                    "amount",
                    "business_short_code",
                    "bill_reference",
                    "invoice_number",
                    "third_party_trans_id",
                    "org_account_balance",
                    "payer_phone",
                    "msisdn_kind",
                    "payer_name",
                    "config",
                    "source",
                )
            },
        ),
        (
            "Matching",
            {
                "fields": (
                    "status",
                    "identified_by",
                    "match_strategy",
                    "borrower",
                    "payer_borrower",
                    "held_reason",
                    "notes_list",
                    "reviewed_at",
                    "reviewed_by",
                )
            },
        ),
        (
            "Processing",
            {"fields": ("attempts", "last_error", "received_at", "processed_at", "processing_ms")},
        ),
        ("Audit trail", {"fields": ("audit_trail",)}),
        # Raw payloads are for admins (see get_fieldsets).
        (
            RAW_REQUEST,
            {"fields": ("source_ip", "raw_headers_pretty", "raw_body_pretty"), "classes": ["collapse"]},
        ),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # From MpesaTransaction.objects, so an MpesaTransactionQuerySet; the stubs type
        # ModelAdmin.get_queryset as returning a plain QuerySet.
        queryset = cast(MpesaTransactionQuerySet, super().get_queryset(request))
        return queryset.visible_to(staff_user(request))

    # --- Display ----------------------------------------------------------------------------------

    @admin.display(description="payer's phone", ordering="msisdn")
    def payer_phone(self, tx: MpesaTransaction) -> str:
        return tx.msisdn_display

    @admin.display(boolean=True, description="reviewed", ordering="reviewed_at")
    def reviewed(self, tx: MpesaTransaction) -> bool:
        return tx.reviewed_at is not None

    @admin.display(description="payer's name")
    def payer_name(self, tx: MpesaTransaction) -> str:
        return tx.payer_name

    @admin.display(description="notes")
    def notes_list(self, tx: MpesaTransaction) -> str:
        if not tx.notes:
            return "—"
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{}</li>", ((note,) for note in tx.notes)))

    @admin.display(description="headers")
    def raw_headers_pretty(self, tx: MpesaTransaction) -> str:
        return pretty_json(tx.raw_headers) if tx.raw_headers else "—"

    @admin.display(description="body")
    def raw_body_pretty(self, tx: MpesaTransaction) -> str:
        return pretty_json(tx.raw_body) if tx.raw_body else "(none stored: entered another way)"

    @admin.display(description="events")
    def audit_trail(self, tx: MpesaTransaction) -> str:
        rows = [
            (
                # Local time, named: staff read these against SMS receipts, which are in Nairobi time.
                f"{timezone.localtime(event.created_at):%Y-%m-%d %H:%M:%S %Z}",
                event.action,
                mask_phone(event.actor_label)
                if event.actor_type == AuditEvent.ActorType.BORROWER
                else f"{event.get_actor_type_display()}: {event.actor_label}",
                money(event.amount),
                event.reason,
            )
            for event in transaction_audit_events(tx)
        ]
        if not rows:
            return "—"
        return format_html(
            "<table><thead><tr><th>when</th><th>what</th><th>who</th><th>amount</th><th>reason</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    def get_fieldsets(self, request: HttpRequest, obj: MpesaTransaction | None = None):
        # The raw request carries the payer's number and names as sent: shown to whoever may see
        # raw callbacks (admins), as on the CallbackRequest pages.
        callbacks = self.admin_site._registry.get(CallbackRequest)
        if callbacks is not None and callbacks.has_view_permission(request):
            return self.fieldsets
        return [(name, options) for name, options in self.fieldsets if name != RAW_REQUEST]

    # --- Search: the M-Pesa code, a phone number in any form, the account, an exact amount ---------

    # --- Statement import ---------------------------------------------------------------------------

    def get_urls(self):
        import_view = self.admin_site.admin_view(self.import_statement_view)
        name = f"{self.opts.app_label}_{self.opts.model_name}_import_statement"
        return [path("import-statement/", import_view, name=name), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra_context = {**(extra_context or {}), "can_import_statement": staff_user(request).is_admin}
        return super().changelist_view(request, extra_context)

    def import_statement_view(self, request: HttpRequest) -> HttpResponse:
        """Upload an M-Pesa statement export: the payments it shows that the system lacks are stored
        (and posted); receipts that disagree are listed, not changed. Admins only: it adds money."""
        if not staff_user(request).is_admin:
            raise PermissionDenied
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        result = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["statement"]
            config = MpesaConfiguration.get_active_config(form.cleaned_data["short_code"])
            try:
                result = statement_import_upload(chunks=upload.chunks(), name=upload.name, config=config)
            except HavenError as exc:
                form.add_error("statement", exc.detail)
            else:
                messages.success(request, f"{upload.name}: {result.summary()}")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import an M-Pesa statement",
            "form": form,
            "result": result,
        }
        return TemplateResponse(request, "admin/payments/statement_import.html", context)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term:
            return results, may_have_duplicates
        if try_normalize_phone(term):
            # Plain and hashed MSISDNs, and the payments of the borrower who owns the number.
            results |= transactions_filter(queryset, phone=term)
            return results, may_have_duplicates
        try:
            amount = to_money(term)
        except InvalidAmount:
            return results, may_have_duplicates
        if amount > 0:
            results |= queryset.filter(amount=amount)
        return results, may_have_duplicates

    # --- Actions ----------------------------------------------------------------------------------

    def has_process_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.change_mpesatransaction")

    def has_reverse_permission(self, request: HttpRequest) -> bool:
        # Undoing money that arrived is an admin's decision.
        return staff_user(request).is_admin and self.has_process_permission(request)

    @staticmethod
    def _details(tx: MpesaTransaction) -> list[tuple[str, object]]:
        return [
            ("M-Pesa code", tx.trans_id),
            ("Time", tx.trans_time),
            ("Amount", money(tx.amount)),
            ("Payer", f"{tx.payer_name} {tx.msisdn_display}".strip()),
            ("Account", tx.bill_reference or "—"),
            ("Status", tx.get_status_display()),
            ("Borrower", tx.borrower or "—"),
        ]

    @admin.action(description="Ask Daraja for the status (Transaction Status)", permissions=["process"])
    def ask_daraja_status(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Confirm selected payments with Daraja; the answers appear under Transaction Status queries."""
        selected = list(queryset.values_list("trans_id", flat=True)[: STATUS_QUERY_LIMIT + 1])
        if len(selected) > STATUS_QUERY_LIMIT:
            self.message_user(
                request, f"Select at most {STATUS_QUERY_LIMIT} payments to ask about.", messages.ERROR
            )
            return
        user = staff_user(request)
        for trans_id in selected:
            try:
                status_query_request(trans_id=trans_id, user=user)
            except HavenError as exc:
                self.message_user(request, f"{trans_id}: {exc.detail}", messages.ERROR)
                return
        self.message_user(request, f"Asked Daraja about {len(selected)} payment(s).", messages.SUCCESS)

    @admin.action(description="Reprocess", permissions=["process"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Reprocessing can post payments to loans: a page lists what was selected and asks for an
        optional reason before anything runs."""
        selected = list(queryset.order_by("trans_time", "id")[: BULK_REPROCESS_LIMIT + 1])
        if len(selected) > BULK_REPROCESS_LIMIT:
            self.message_user(
                request, f"Reprocess at most {BULK_REPROCESS_LIMIT} payments at a time.", messages.ERROR
            )
            return None
        form = ReprocessForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            self._reprocess_each(request, selected, reason=form.cleaned_data["reason"])
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reprocess {len(selected)} payment{'s' if len(selected) != 1 else ''}",
            "opts": self.model._meta,
            "objects": [(tx.pk, self._details(tx)) for tx in selected],
            "form": form,
            "media": self.media + form.media,
            "action": "reprocess",
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "submit_label": "Reprocess",
        }
        return TemplateResponse(request, BULK_ACTION_TEMPLATE, context)

    def _reprocess_each(self, request: HttpRequest, selected: list[MpesaTransaction], *, reason: str) -> None:
        actor = Actor.staff(staff_user(request))
        for trans_id in (tx.trans_id for tx in selected):
            try:
                tx = transaction_reprocess(trans_id=trans_id, actor=actor, reason=reason)
            # TransientProcessingError is a HavenError: caught first, or its message never shows.
            except TransientProcessingError:
                self.message_user(
                    request,
                    f"{trans_id}: the database was busy; it stays received and will be tried again.",
                    messages.WARNING,
                )
            except HavenError as exc:
                self.message_user(request, f"{trans_id}: {exc.detail}", messages.ERROR)
            else:
                level = (
                    messages.SUCCESS if tx.status == MpesaTransaction.Status.PROCESSED else messages.WARNING
                )
                detail = f": {tx.last_error}" if tx.status == MpesaTransaction.Status.FAILED else ""
                self.message_user(
                    request, f"{trans_id} reprocessed: {tx.get_status_display()}{detail}.", level
                )

    @admin.action(description="Assign to a loan", permissions=["process"])
    def assign_to_loan(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        tx = selected_one(self, request, queryset, "Assign to a loan")
        if tx is None:
            return None

        def perform(data: dict) -> str:
            done = transaction_assign(
                trans_id=tx.trans_id,
                loan_number=data["loan_number"],
                actor=Actor.staff(staff_user(request)),
                reason=data["reason"],
            )
            loan = Loan.objects.select_related("borrower").get(loan_number=data["loan_number"])
            return (
                f"{done.trans_id} ({money(done.amount)}) assigned to {loan} of {loan.borrower}; "
                f"outstanding now {money(loan.outstanding)}."
            )

        return form_page(
            self,
            request,
            tx,
            action="assign_to_loan",
            title="Assign to a loan",
            submit_label="Assign",
            form_class=AssignToLoanForm,
            form_kwargs={"actor": Actor.staff(staff_user(request))},
            details=self._details(tx),
            perform=perform,
        )

    @admin.action(description="Mark reviewed", permissions=["process"])
    def mark_reviewed(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        tx = selected_one(self, request, queryset, "Mark reviewed")
        if tx is None:
            return None

        def perform(data: dict) -> str:
            transaction_mark_reviewed(
                trans_id=tx.trans_id, actor=Actor.staff(staff_user(request)), note=data["note"]
            )
            return f"{tx.trans_id} marked reviewed."

        return form_page(
            self,
            request,
            tx,
            action="mark_reviewed",
            title="Mark reviewed",
            submit_label="Mark reviewed",
            form_class=ReviewNoteForm,
            details=self._details(tx),
            perform=perform,
        )

    @admin.action(description="Reverse", permissions=["reverse"])
    def reverse_payment(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        tx = selected_one(self, request, queryset, "Reverse")
        if tx is None:
            return None

        def perform(data: dict) -> str:
            done = transaction_reverse(
                trans_id=tx.trans_id, actor=Actor.staff(staff_user(request)), reason=data["reason"]
            )
            return f"{done.trans_id} ({money(done.amount)}) reversed; its postings and credit were undone."

        return form_page(
            self,
            request,
            tx,
            action="reverse_payment",
            title="Reverse",
            submit_label="Reverse payment",
            form_class=ReverseForm,
            details=self._details(tx),
            perform=perform,
        )
