"""Staff actions on payments: reprocess, assign to a loan, mark reviewed, reverse.

Used by the admin, the API, the staff pages and the Telegram bot alike; each checks the current
state first, works under the same locks as processing, and is audited with who and why.

Who may act on what is checked here, once for every caller: a staff actor who is not an admin finds
only the payments and loans of their portfolio (anything else is ``NotFound``, as if it did not
exist); borrower and system actors are not scoped here (a borrower's own service checks ownership).
"""

from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from core.exceptions import InvalidInput, InvalidState, NotFound, PermissionDenied
from core.models import Borrower, Loan, User
from core.services import audit_record, borrower_credit_use, repayment_reverse
from payments.models import Allocation, MpesaTransaction
from payments.services.processing import allocate_payment, queue_payment_news, transaction_process

REPROCESSABLE = (
    MpesaTransaction.Status.RECEIVED,
    MpesaTransaction.Status.FAILED,
    MpesaTransaction.Status.UNMATCHED,
)


def _portfolio_of(actor: Actor) -> User | None:
    """The staff user whose portfolio bounds what ``actor`` may touch; ``None`` for no bound."""
    if actor.kind == "staff" and actor.user is not None and not actor.user.is_admin:
        return actor.user
    return None


def _locked(trans_id: str, actor: Actor) -> MpesaTransaction:
    """The payment ``trans_id`` (any case), locked, if ``actor`` may act on it; ``NotFound`` otherwise,
    the same answer whether it does not exist or is outside the actor's portfolio."""
    trans_id = trans_id.strip().upper()
    tx = MpesaTransaction.objects.select_for_update().filter(trans_id=trans_id).first()
    officer = _portfolio_of(actor)
    # Checked after the lock, so the payment cannot leave the portfolio between check and change.
    if tx is None or (
        officer is not None and not MpesaTransaction.objects.visible_to(officer).filter(pk=tx.pk).exists()
    ):
        raise NotFound(f"no M-Pesa transaction {trans_id}")
    return tx


def assignable_loan(*, loan_number: str, actor: Actor) -> Loan:
    """The active loan numbered ``loan_number`` (typed in any case) that ``actor`` may put a payment
    on. Raises ``NotFound`` (no such loan, or outside the actor's portfolio) or ``InvalidState`` (not
    active). The whole number, on purpose: a loose reading (``loan 10``) of a mistyped number can be
    another loan, and this moves money. Every staff channel asks it: the API, the admin's and the staff
    pages' forms (to show the loan before staff confirm) and the Telegram bot."""
    number = loan_number.strip()
    officer = _portfolio_of(actor)
    loans = Loan.objects.all() if officer is None else Loan.objects.visible_to(officer)
    loan = loans.select_related("borrower").filter(loan_number__iexact=number).order_by("id").first()
    if loan is None:
        raise NotFound(f"no loan numbered {number}")
    if loan.status != Loan.Status.ACTIVE:
        raise InvalidState(f"{loan.loan_number} is {loan.get_status_display().lower()}, not active")
    return loan


def _need_reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(f"{what} needs a reason")
    return reason


def _undo_allocations(*, tx: MpesaTransaction, actor: Actor, reason: str) -> list[Allocation]:
    """Reverse every live allocation of ``tx`` exactly: postings are reversed, credit taken back."""
    live = list(tx.allocations.filter(reversed_at__isnull=True).select_related("repayment"))
    now = timezone.now()
    for allocation in live:
        if allocation.target == Allocation.Target.LOAN:
            if allocation.repayment is None:  # a check constraint forbids it
                raise InvalidState(
                    f"allocation #{allocation.pk} of {tx.trans_id} is to a loan but has no repayment"
                )
            repayment_reverse(repayment=allocation.repayment, actor=actor, reason=reason)
        else:
            borrower = Borrower.objects.get(pk=allocation.borrower_id)
            borrower_credit_use(
                borrower=borrower, amount=allocation.amount, actor=actor, reference=tx.trans_id, reason=reason
            )
        allocation.reversed_at = now
    Allocation.objects.bulk_update(live, ["reversed_at"])
    return live


def _lock_borrowers(*ids: int | None) -> None:
    # Lock order: borrowers by id, before any loan.
    wanted = sorted({pk for pk in ids if pk is not None})
    list(Borrower.objects.select_for_update().filter(pk__in=wanted).order_by("id"))


def transaction_reprocess(*, trans_id: str, actor: Actor, reason: str = "") -> MpesaTransaction:
    """Run matching and posting again for a ``received``, ``failed`` or ``unmatched`` payment.

    Returns the payment with its new status. Raises ``NotFound`` or ``InvalidState`` (a processed
    payment is moved with ``transaction_assign``, not reprocessed)."""
    with transaction.atomic():
        tx = _locked(trans_id, actor)
        trans_id = tx.trans_id
        if tx.status == MpesaTransaction.Status.HELD:
            raise InvalidState(
                f"{trans_id} is held for staff ({tx.held_reason}); assign it to a loan or mark it reviewed"
            )
        if tx.status not in REPROCESSABLE:
            raise InvalidState(
                f"{trans_id} is {tx.status}; only received, failed or unmatched payments are reprocessed"
            )
        previous = tx.status
        tx.status = MpesaTransaction.Status.RECEIVED
        tx.notes = [*tx.notes, f"reprocess requested by {actor.label}" + (f": {reason}" if reason else "")]
        tx.save(update_fields=["status", "notes"])
        audit_record(
            action="mpesa.reprocessed",
            actor=actor,
            obj=tx,
            amount=tx.amount,
            reason=reason,
            data={"trans_id": trans_id, "status_before": previous},
        )
    return transaction_process(trans_id=trans_id)


def transaction_assign(
    *, trans_id: str, loan_number: str, actor: Actor, reason: str = ""
) -> MpesaTransaction:
    """Put a payment on ``loan_number``: an unmatched or failed one, or one that went to the wrong loan
    (its earlier postings are reversed exactly first). Excess goes to the borrower's other active loans,
    then to credit, as in automatic processing.

    Returns the processed payment. Raises ``NotFound`` (payment or loan, or either outside a staff
    actor's portfolio), ``InvalidState`` (payment reversed, already on that loan, loan not active, or
    earlier credit already spent)."""
    reason = (reason or "").strip() or "assigned by staff"
    with transaction.atomic():
        tx = _locked(trans_id, actor)
        trans_id = tx.trans_id
        if tx.status == MpesaTransaction.Status.REVERSED:
            raise InvalidState(f"{trans_id} was reversed; it cannot be assigned")
        loan = assignable_loan(loan_number=loan_number, actor=actor)
        first = tx.allocations.filter(reversed_at__isnull=True).order_by("id").first()
        if tx.status == MpesaTransaction.Status.PROCESSED and first is not None and first.loan_id == loan.pk:
            # Moving it "again" would reverse and re-post the same money and send a second receipt.
            raise InvalidState(f"{trans_id} is already on {loan.loan_number}; nothing was changed")
        previous = {"status": tx.status, "borrower": tx.borrower_id, "strategy": tx.match_strategy}
        _lock_borrowers(tx.borrower_id, loan.borrower_id)
        undone = _undo_allocations(
            tx=tx, actor=actor, reason=f"payment {trans_id} moved to {loan.loan_number}: {reason}"
        )
        posted = allocate_payment(tx=tx, borrower_id=loan.borrower_id, first_loan_id=loan.pk, actor=actor)
        tx.borrower_id = loan.borrower_id
        tx.identified_by = MpesaTransaction.IdentifiedBy.MANUAL
        tx.match_strategy = MpesaTransaction.Strategy.MANUAL
        tx.status = MpesaTransaction.Status.PROCESSED
        tx.processed_at = timezone.now()
        tx.reviewed_at, tx.reviewed_by = timezone.now(), actor.user
        tx.last_error = ""
        tx.notes = [*tx.notes, f"assigned to {loan.loan_number} by {actor.label}: {reason}"]
        tx.save()
        audit_record(
            action="mpesa.assigned",
            actor=actor,
            loan=loan,
            obj=tx,
            amount=tx.amount,
            reason=reason,
            data={
                "trans_id": trans_id,
                "loan_number": loan.loan_number,
                "before": previous,
                "reversed_allocations": [a.pk for a in undone],
            },
        )
        queue_payment_news(tx=tx, posted=posted)
    return tx


def transaction_mark_reviewed(*, trans_id: str, actor: Actor, note: str = "") -> MpesaTransaction:
    """Record that staff looked at a payment (e.g. an unmatched one that will be refunded elsewhere),
    or at a borrower's request to review it. Raises ``NotFound``, or ``InvalidState`` when it was
    already reviewed and no borrower has asked for a review since."""
    with transaction.atomic():
        tx = _locked(trans_id, actor)
        trans_id = tx.trans_id
        if tx.reviewed_at is not None and not tx.review_requested_since_reviewed():
            raise InvalidState(f"{trans_id} was already reviewed")
        tx.reviewed_at, tx.reviewed_by = timezone.now(), actor.user
        tx.notes = [*tx.notes, f"reviewed by {actor.label}" + (f": {note.strip()}" if note.strip() else "")]
        tx.save(update_fields=["reviewed_at", "reviewed_by", "notes"])
        audit_record(
            action="mpesa.reviewed",
            actor=actor,
            obj=tx,
            amount=tx.amount,
            reason=note,
            data={"trans_id": trans_id},
        )
    return tx


def transaction_reverse(*, trans_id: str, actor: Actor, reason: str) -> MpesaTransaction:
    """Reverse a payment (Safaricom reversed it, or it was refunded): its postings are undone exactly,
    its credit taken back, and it is marked ``reversed``. Raises ``InvalidInput`` without a reason,
    ``NotFound``, ``PermissionDenied`` (a member of staff who is not an admin: undoing money that
    arrived is an admin's decision), or ``InvalidState`` (already reversed, or its credit already spent)."""
    reason = _need_reason(reason, "a reversal")
    with transaction.atomic():
        tx = _locked(trans_id, actor)
        trans_id = tx.trans_id
        if actor.kind == "staff" and not (actor.user is not None and actor.user.is_admin):
            raise PermissionDenied("only an admin may reverse a payment")
        if tx.status == MpesaTransaction.Status.REVERSED:
            raise InvalidState(f"{trans_id} is already reversed")
        previous = tx.status
        _lock_borrowers(tx.borrower_id)
        undone = _undo_allocations(tx=tx, actor=actor, reason=f"payment {trans_id} reversed: {reason}")
        tx.status = MpesaTransaction.Status.REVERSED
        tx.reviewed_at, tx.reviewed_by = timezone.now(), actor.user
        tx.notes = [*tx.notes, f"reversed by {actor.label}: {reason}"]
        tx.save(update_fields=["status", "reviewed_at", "reviewed_by", "notes"])
        audit_record(
            action="mpesa.reversed",
            actor=actor,
            obj=tx,
            amount=tx.amount,
            reason=reason,
            data={
                "trans_id": trans_id,
                "status_before": previous,
                "reversed_allocations": [a.pk for a in undone],
            },
        )
    return tx
