"""M-Pesa REST endpoints: the payment list and detail, staff actions on a payment, statistics.

Officers see and act on their portfolio's payments only (anything else is a 404, as if it did not
exist); payments that identify no borrower are for admins. Reversing a payment is for admins. The
action services check both themselves (``payments.services.actions``).
"""

from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Status
from ninja.pagination import LimitOffsetPagination, paginate

from core.actors import Actor
from core.auth import api_user
from core.exceptions import NotFound
from core.schemas import ErrorOut
from payments.filters import transaction_get, transactions_filter, transactions_for_user
from payments.models import MpesaTransaction, StatusQuery
from payments.schemas import (
    AssignIn,
    ReconciliationIn,
    ReconciliationOut,
    ReprocessIn,
    ReverseIn,
    ReviewIn,
    StatsOut,
    StatusQueryIn,
    StatusQueryOut,
    TransactionDetailOut,
    TransactionFiltersIn,
    TransactionOut,
)
from payments.selectors import reconciliation_report
from payments.services import (
    transaction_assign,
    transaction_mark_reviewed,
    transaction_reprocess,
    transaction_reverse,
)
from payments.services.status import status_query_request
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


@router.post(
    "/transactions/status-query",
    response={202: StatusQueryOut, **ACTION_ERRORS, 502: ErrorOut, 503: ErrorOut},
)
def status_query_endpoint(request: HttpRequest, payload: StatusQueryIn) -> Status[StatusQuery]:
    """Ask Daraja (Transaction Status) about an M-Pesa code a borrower says they paid with. Answers
    202 with the query; Daraja's answer arrives later (``GET .../status-query/{id}``). A completed
    payment into the paybill that the system lacks is then recorded and posted. The same code asked
    again while its query waits returns that query."""
    return Status(202, status_query_request(trans_id=payload.trans_id, user=api_user(request)))


@router.get("/transactions/status-query/{query_id}", response={200: StatusQueryOut, **ERRORS})
def status_query_detail(request: HttpRequest, query_id: int) -> StatusQuery:
    """A Transaction Status query and, once it arrived, Daraja's answer."""
    api_user(request)
    query = StatusQuery.objects.filter(pk=query_id).first()
    if query is None:
        raise NotFound(f"no status query {query_id}")
    return query


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
    """Record that staff looked at a payment (409 if it was already reviewed, and no borrower asked for
    a review since)."""
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


@router.get("/reconciliation", response={200: ReconciliationOut, **ERRORS})
def reconciliation(request: HttpRequest, filters: Query[ReconciliationIn]) -> dict:
    """One Nairobi day: the payments the caller may see by source and by status, the balance gaps
    (money the paybill received that the system never saw) and the last Pull Transactions."""
    user = api_user(request)
    return reconciliation_report(day=filters.date or timezone.localdate(), user=user)
