"""M-Pesa REST endpoints: the payment list and detail, staff actions on a payment, statistics.

Officers see and act on their portfolio's payments only (anything else is a 404, as if it did not
exist); payments that identify no borrower are for admins. Reversing a payment is for admins. The
action services check both themselves (``payments.services.actions``).
"""

from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import LimitOffsetPagination, paginate

from core.actors import Actor
from core.auth import api_user
from core.schemas import ErrorOut
from payments.filters import transaction_get, transactions_filter, transactions_for_user
from payments.models import MpesaTransaction
from payments.schemas import (
    AssignIn,
    ReprocessIn,
    ReverseIn,
    ReviewIn,
    StatsOut,
    TransactionDetailOut,
    TransactionFiltersIn,
    TransactionOut,
)
from payments.services import (
    transaction_assign,
    transaction_mark_reviewed,
    transaction_reprocess,
    transaction_reverse,
)
from payments.stats import payment_stats

router = Router(tags=["payments"])

ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
ACTION_ERRORS = {**ERRORS, 409: ErrorOut}
MAX_PAGE = 500


def _after_action(trans_id: str) -> MpesaTransaction:
    # Unscoped on purpose: assigning can move a payment out of the actor's portfolio, and the
    # actor is still owed the result of what they just did.
    return transaction_get(trans_id=trans_id, user=None)


@router.get("/transactions", response={200: list[TransactionOut], **ERRORS})
@paginate(LimitOffsetPagination, max_limit=MAX_PAGE)
def transaction_list(request: HttpRequest, filters: Query[TransactionFiltersIn]):
    """Payments the caller may see, newest first (by ``trans_time``), paginated with ``limit`` and
    ``offset``; every filter optional. ``phone`` matches the payer's number (plain or hashed) and
    the borrower who owns it."""
    return transactions_filter(transactions_for_user(api_user(request)), **filters.model_dump())


@router.get("/transactions/{trans_id}", response={200: TransactionDetailOut, **ERRORS})
def transaction_detail(request: HttpRequest, trans_id: str) -> MpesaTransaction:
    """A payment with where its money went, what the matcher noted, and its processing history."""
    return transaction_get(trans_id=trans_id, user=api_user(request))


@router.post("/transactions/{trans_id}/reprocess", response={200: TransactionDetailOut, **ACTION_ERRORS})
def transaction_reprocess_endpoint(
    request: HttpRequest, trans_id: str, payload: ReprocessIn | None = None
) -> MpesaTransaction:
    """Match and post a ``received``, ``failed`` or ``unmatched`` payment again (409 otherwise)."""
    reason = payload.reason if payload else ""
    tx = transaction_reprocess(trans_id=trans_id, actor=Actor.staff(api_user(request)), reason=reason)
    return _after_action(tx.trans_id)


@router.post("/transactions/{trans_id}/assign", response={200: TransactionDetailOut, **ACTION_ERRORS})
def transaction_assign_endpoint(request: HttpRequest, trans_id: str, payload: AssignIn) -> MpesaTransaction:
    """Put a payment on an active loan the caller may see, reversing where it went before."""
    tx = transaction_assign(
        trans_id=trans_id,
        loan_number=payload.loan_number,
        actor=Actor.staff(api_user(request)),
        reason=payload.reason,
    )
    return _after_action(tx.trans_id)


@router.post("/transactions/{trans_id}/review", response={200: TransactionDetailOut, **ACTION_ERRORS})
def transaction_review_endpoint(request: HttpRequest, trans_id: str, payload: ReviewIn) -> MpesaTransaction:
    """Record that staff looked at a payment (409 if it was already reviewed)."""
    tx = transaction_mark_reviewed(trans_id=trans_id, actor=Actor.staff(api_user(request)), note=payload.note)
    return _after_action(tx.trans_id)


@router.post("/transactions/{trans_id}/reverse", response={200: TransactionDetailOut, **ACTION_ERRORS})
def transaction_reverse_endpoint(request: HttpRequest, trans_id: str, payload: ReverseIn) -> MpesaTransaction:
    """Admins only: undo a payment's postings and credit and mark it reversed."""
    tx = transaction_reverse(trans_id=trans_id, actor=Actor.staff(api_user(request)), reason=payload.reason)
    return _after_action(tx.trans_id)


@router.get("/stats", response={200: StatsOut, **ERRORS})
def stats(request: HttpRequest) -> dict:
    """Payments today, over the last 7 and 30 Nairobi days, the backlog, and 30 days day by day,
    over the payments the caller may see."""
    return payment_stats(queryset=MpesaTransaction.objects.visible_to(api_user(request)))
