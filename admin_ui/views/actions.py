"""Staff actions on one payment. Each is a POST (CSRF-checked by the middleware) to its own URL that
calls one service and goes back to the payment's page with a message; a refusal is a message too."""

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from admin_ui.forms import AssignForm, ReprocessForm, ReverseForm, ReviewForm
from admin_ui.views.transactions import visible_transaction
from core.actors import Actor
from core.exceptions import HavenError
from core.http import staff_user
from payments.models import MpesaTransaction
from payments.services import (
    TransientProcessingError,
    transaction_assign,
    transaction_mark_reviewed,
    transaction_reprocess,
    transaction_reverse,
)

# perform(actor, **cleaned_data) -> (message level, text)
Perform = Callable[..., tuple[int, str]]


def _act(request: HttpRequest, trans_id: str, form_class: type[forms.Form], perform: Perform) -> HttpResponse:
    user = staff_user(request)
    # The page of a payment outside the portfolio is a 404; the service checks again, under lock.
    visible_transaction(user, trans_id)
    form = form_class(request.POST)
    if not form.is_valid():
        for name, errors in form.errors.items():
            label = "" if name in ("__all__", "confirm") else f"{form[name].label}: "
            for error in errors:
                messages.error(request, f"{label}{error}")
    else:
        try:
            level, text = perform(Actor.staff(user), **form.cleaned_data)
        except HavenError as exc:
            messages.error(request, exc.detail)
        else:
            messages.add_message(request, level, text)
    return redirect("admin_ui:transaction-detail", trans_id=trans_id)


def _outcome(tx: MpesaTransaction, done: str) -> tuple[int, str]:
    if tx.status == MpesaTransaction.Status.PROCESSED:
        return messages.SUCCESS, f"{tx.trans_id} {done}: processed."
    detail = f" ({tx.last_error})" if tx.status == MpesaTransaction.Status.FAILED and tx.last_error else ""
    return messages.WARNING, f"{tx.trans_id} {done}: {tx.get_status_display().lower()}{detail}."


@staff_member_required
@require_POST
def reprocess(request: HttpRequest, trans_id: str) -> HttpResponse:
    def perform(actor: Actor, *, reason: str, confirm: bool) -> tuple[int, str]:
        try:
            tx = transaction_reprocess(trans_id=trans_id, actor=actor, reason=reason)
        except TransientProcessingError:
            return messages.WARNING, f"{trans_id}: the database was busy; it will be retried shortly."
        return _outcome(tx, "reprocessed")

    return _act(request, trans_id, ReprocessForm, perform)


@staff_member_required
@require_POST
def assign(request: HttpRequest, trans_id: str) -> HttpResponse:
    def perform(actor: Actor, *, loan_number: str, reason: str, confirm: bool) -> tuple[int, str]:
        # The service finds the loan in any case, within an officer's portfolio.
        tx = transaction_assign(trans_id=trans_id, loan_number=loan_number, actor=actor, reason=reason)
        loan = tx.allocations.filter(reversed_at__isnull=True).select_related("loan").order_by("id").first()
        where = loan.loan.loan_number if loan is not None and loan.loan is not None else loan_number.strip()
        return _outcome(tx, f"assigned to {where}")

    return _act(request, trans_id, AssignForm, perform)


@staff_member_required
@require_POST
def review(request: HttpRequest, trans_id: str) -> HttpResponse:
    def perform(actor: Actor, *, note: str) -> tuple[int, str]:
        transaction_mark_reviewed(trans_id=trans_id, actor=actor, note=note)
        return messages.SUCCESS, f"{trans_id} marked as reviewed."

    return _act(request, trans_id, ReviewForm, perform)


@staff_member_required
@require_POST
def reverse(request: HttpRequest, trans_id: str) -> HttpResponse:
    def perform(actor: Actor, *, reason: str, confirm: bool) -> tuple[int, str]:
        transaction_reverse(trans_id=trans_id, actor=actor, reason=reason)
        return messages.SUCCESS, f"{trans_id} reversed: its postings and credit were undone."

    return _act(request, trans_id, ReverseForm, perform)
