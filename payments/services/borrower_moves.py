"""A borrower confirming, or moving, their latest payment from their own phone (USSD or SMS).

A move happens automatically only within ``MOVE_WINDOW`` of the payment, to another of the
borrower's own active loans, and while the money is still where the engine put it (processed,
never moved or reviewed by staff, nothing reversed). It goes through ``transaction_assign``, the
staff assignment service, audited as the borrower's phone; the borrower gets an SMS confirmation
and the loan officer a note. Anything else becomes a ``ReviewRequest`` and staff are alerted once
per payment.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from core.exceptions import InvalidState, NotFound
from core.models import Borrower, Loan
from core.phones import mask_phone
from core.services import audit_record
from core.services.outbox import outbox_queue, outbox_queue_for_staff, staff_to_alert
from payments import messages
from payments.matching import loan_number_candidates
from payments.models import Allocation, MpesaTransaction, ReviewRequest
from payments.selectors import payments_of_borrower
from payments.services.actions import transaction_assign

logger = logging.getLogger(__name__)

MOVE_WINDOW = timedelta(hours=48)


class MoveResult(StrEnum):
    MOVED = "moved"
    ALREADY_THERE = "already_there"  # the payment is already on that loan: nothing to do
    REVIEW = "review"  # staff will look at it
    NO_PAYMENT = "no_payment"  # no such payment of this borrower
    NOT_YOUR_LOAN = "not_your_loan"  # not one of the borrower's active loans


@dataclass(frozen=True, slots=True)
class MoveOutcome:
    result: MoveResult
    trans_id: str = ""
    amount: Decimal | None = None
    loan_number: str = ""


def _live_loan_numbers(tx: MpesaTransaction) -> list[str]:
    allocations = tx.allocations.filter(reversed_at__isnull=True, target=Allocation.Target.LOAN)
    return list(allocations.order_by("id").values_list("loan__loan_number", flat=True))


def _why_not_automatic(tx: MpesaTransaction, borrower: Borrower) -> str | None:
    """Why the engine's allocation of ``tx`` may not be moved by the borrower, or ``None`` if it may."""
    if tx.borrower_id != borrower.pk or tx.status != MpesaTransaction.Status.PROCESSED:
        return f"the payment is {tx.status}, not posted to this borrower"
    if timezone.now() - tx.trans_time > MOVE_WINDOW:
        return "it is more than 48 hours old"
    if tx.match_strategy == MpesaTransaction.Strategy.MANUAL or tx.reviewed_at is not None:
        return "it was already moved or reviewed"
    if tx.allocations.filter(reversed_at__isnull=False).exists():
        return "part of it was already moved"
    return None


def borrower_loan_find(*, borrower: Borrower, loan_number: str) -> Loan | None:
    """The borrower's own active loan that ``loan_number`` names, typed loosely (``loan 102``,
    ``102``, ``LOAN-000102``), or ``None``."""
    candidates = loan_number_candidates(loan_number)
    loans = {
        loan.loan_number: loan
        for loan in Loan.objects.active().filter(borrower=borrower, loan_number__in=candidates)
    }
    return next((loans[number] for number in candidates if number in loans), None)


def borrower_payment_confirm(*, borrower: Borrower, phone: str, trans_id: str) -> MpesaTransaction:
    """Record that the borrower confirmed where their payment ``trans_id`` went (audited as their
    phone). Returns the payment; raises ``NotFound`` when it is not one of theirs."""
    tx = payments_of_borrower(borrower=borrower).filter(trans_id=trans_id).first()
    if tx is None:
        raise NotFound(f"no payment {trans_id} of this borrower")
    audit_record(
        action="mpesa.borrower_confirmed",
        actor=Actor.borrower(phone),
        borrower=borrower,
        obj=tx,
        amount=tx.amount,
        data={"trans_id": tx.trans_id, "loans": _live_loan_numbers(tx)},
    )
    return tx


def borrower_payment_move(
    *, borrower: Borrower, phone: str, loan_number: str, trans_id: str | None = None
) -> MoveOutcome:
    """Move the borrower's payment ``trans_id`` (their latest when ``None``) to their active loan
    ``loan_number``, or ask staff to review it when that may not be done automatically.

    Returns a ``MoveOutcome``: ``moved`` (through ``transaction_assign``, with an SMS confirmation
    and a note to the officer), ``already_there``, ``review`` (a ``ReviewRequest`` stored, staff
    alerted once per payment), ``no_payment`` or ``not_your_loan``. Raises nothing for a borrower's
    mistake; the caller turns the outcome into words.
    """
    payments = payments_of_borrower(borrower=borrower)
    if trans_id is not None:
        payments = payments.filter(trans_id=trans_id.strip().upper())
    latest = payments.first()
    if latest is None:
        return MoveOutcome(MoveResult.NO_PAYMENT, trans_id=(trans_id or "").upper())
    loan = borrower_loan_find(borrower=borrower, loan_number=loan_number)
    if loan is None:
        return MoveOutcome(MoveResult.NOT_YOUR_LOAN, trans_id=latest.trans_id, amount=latest.amount)
    with transaction.atomic():
        # The payment's lock first, as transaction_assign takes it: staff cannot move it between
        # the checks below and the move.
        tx = MpesaTransaction.objects.select_for_update().get(pk=latest.pk)
        outcome = MoveOutcome(
            MoveResult.MOVED, trans_id=tx.trans_id, amount=tx.amount, loan_number=loan.loan_number
        )
        current = _live_loan_numbers(tx)
        if tx.borrower_id == borrower.pk and current and current[0] == loan.loan_number:
            return MoveOutcome(MoveResult.ALREADY_THERE, tx.trans_id, tx.amount, loan.loan_number)
        reason = _why_not_automatic(tx, borrower)
        if reason is None:
            try:
                with transaction.atomic():
                    tx = transaction_assign(
                        trans_id=tx.trans_id,
                        loan_number=loan.loan_number,
                        actor=Actor.borrower(phone),
                        reason="moved by the borrower from their phone",
                    )
                    _tell_about_move(tx=tx, borrower=borrower, loan=loan)
            except InvalidState as exc:
                reason = f"the move was refused ({exc.detail})"
            except NotFound as exc:
                reason = f"the move found nothing to move ({exc.detail})"
        if reason is not None:
            _request_review(tx=tx, borrower=borrower, phone=phone, loan=loan, reason=reason)
            return MoveOutcome(MoveResult.REVIEW, tx.trans_id, tx.amount, loan.loan_number)
    logger.info(
        "payment %s moved to %s by the borrower (%s)", tx.trans_id, loan.loan_number, mask_phone(phone)
    )
    return outcome


def _tell_about_move(*, tx: MpesaTransaction, borrower: Borrower, loan: Loan) -> None:
    loan.refresh_from_db(fields=["penalties", "fees", "interest", "principal"])
    first_allocation = tx.allocations.filter(reversed_at__isnull=True).order_by("id").first()
    round_key = f"{tx.trans_id}:{first_allocation.pk if first_allocation else 0}"
    phone = borrower.primary_phone
    if phone is not None:
        outbox_queue(
            channel="sms",
            recipient=phone.number,
            body=messages.move_confirmation_text(
                language=borrower.preferred_language,
                trans_id=tx.trans_id,
                amount=tx.amount,
                loan_number=loan.loan_number,
                outstanding=loan.outstanding,
            ),
            dedupe_key=f"borrower-move:{round_key}",
            borrower=borrower,
        )
    if borrower.loan_officer is not None:
        outbox_queue_for_staff(
            users=[borrower.loan_officer],
            body=messages.move_officer_note_text(
                borrower_name=borrower.full_name,
                trans_id=tx.trans_id,
                amount=tx.amount,
                loan_number=loan.loan_number,
            ),
            dedupe_key=f"borrower-move-note:{round_key}",
            context={"kind": "posted", "trans_id": tx.trans_id},
        )


def _request_review(
    *, tx: MpesaTransaction, borrower: Borrower, phone: str, loan: Loan | None, reason: str
) -> None:
    ReviewRequest.objects.create(
        transaction=tx, borrower=borrower, phone=phone, requested_loan=loan, reason=reason
    )
    outbox_queue_for_staff(
        users=staff_to_alert(officer=borrower.loan_officer),
        body=messages.review_request_alert_text(
            borrower_name=borrower.full_name,
            trans_id=tx.trans_id,
            amount=tx.amount,
            loan_number=loan.loan_number if loan else None,
            reason=reason,
        ),
        dedupe_key=f"review-request:{tx.trans_id}",
        context={"kind": "review_request", "trans_id": tx.trans_id},
    )
    logger.info("payment %s: borrower asked for a review (%s)", tx.trans_id, reason)
