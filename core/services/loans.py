"""Loans and repayments: create, post (the waterfall), reverse, write off.

Lock order, everywhere in the project: the borrower row first, then loan rows in id order. Postings
lock the loan row with ``select_for_update`` inside a transaction, so concurrent postings to one loan
queue up and each sees the balance the previous one left.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from core.actors import Actor
from core.db import create_row, save_fields
from core.exceptions import InvalidAmount, InvalidInput, InvalidState
from core.models import Borrower, Counter, Loan, Repayment, User
from core.money import ZERO, to_money
from core.services.audit import audit_record, audited_update
from core.services.credit import borrower_credit_add
from core.waterfall import Split, split_payment

LOAN_NUMBER_FORMAT = "LOAN-{:06d}"
LOAN_NUMBER_PATTERN = re.compile(r"^LOAN-(\d+)$")
_LOAN_COUNTER = "loan_number"
# Repayment.source of a posting paid out of the borrower's credit balance.
CREDIT_SOURCE = "credit"


@dataclass(frozen=True, slots=True)
class PostingResult:
    """What ``repayment_post`` did: the repayment row (None when nothing was applied), the loan after
    posting, and the excess the loan could not take (the caller decides where it goes)."""

    loan: Loan
    repayment: Repayment | None
    applied: Decimal
    excess: Decimal


def loan_next_number() -> str:
    """Reserve and return the next ``LOAN-000123`` number, skipping any number already taken."""
    with transaction.atomic():
        counter, _ = Counter.objects.select_for_update().get_or_create(name=_LOAN_COUNTER)
        while True:
            counter.value += 1
            number = LOAN_NUMBER_FORMAT.format(counter.value)
            if not Loan.objects.filter(loan_number=number).exists():
                break
        counter.save(update_fields=["value"])
    return number


def loan_number_counter_raise_to(value: int) -> None:
    """Make sure the next generated loan number is above ``value`` (after importing numbered loans)."""
    with transaction.atomic():
        counter, _ = Counter.objects.select_for_update().get_or_create(name=_LOAN_COUNTER)
        if counter.value < value:
            counter.value = value
            counter.save(update_fields=["value"])


def loan_create(
    *,
    borrower: Borrower,
    principal: Decimal,
    due_date: date,
    actor: Actor,
    interest: Decimal = ZERO,
    fees: Decimal = ZERO,
    penalties: Decimal = ZERO,
    disbursed_on: date | None = None,
    loan_officer: User | None = None,
    loan_number: str | None = None,
) -> Loan:
    """Create an active loan with the next loan number (or ``loan_number`` if given) and audit it.

    ``principal`` is the amount disbursed and, at creation, the principal outstanding. Raises
    ``InvalidAmount`` for a non-positive principal or negative charges, ``InvalidInput`` for a
    loan number already in use.
    """
    principal = to_money(principal)
    charges = {"interest": to_money(interest), "fees": to_money(fees), "penalties": to_money(penalties)}
    if principal <= 0:
        raise InvalidAmount("principal must be more than zero")
    if any(value < 0 for value in charges.values()):
        raise InvalidAmount("interest, fees and penalties cannot be negative")
    with transaction.atomic():
        if loan_number is None:
            loan_number = loan_next_number()
        elif Loan.objects.filter(loan_number=loan_number).exists():
            raise InvalidInput(f"loan number {loan_number} is already in use")
        loan = Loan.objects.create(
            loan_number=loan_number,
            borrower=borrower,
            principal_disbursed=principal,
            principal=principal,
            disbursed_on=disbursed_on or timezone.localdate(),
            due_date=due_date,
            loan_officer=loan_officer or borrower.loan_officer,
            **charges,
        )
        audit_record(
            action="loan.created",
            actor=actor,
            loan=loan,
            obj=loan,
            amount=loan.outstanding,
            data={"loan_number": loan.loan_number, **Split(principal=principal, **charges).as_dict()},
        )
    return loan


def repayment_post(
    *,
    loan: Loan,
    amount: Decimal,
    actor: Actor,
    source: str,
    reference: str = "",
    reason: str = "",
    posted_at: datetime | None = None,
) -> PostingResult:
    """Apply ``amount`` to ``loan``: penalties, then fees, then interest, then principal.

    Locks the loan row for the duration (joins the caller's transaction if there is one). A loan
    whose outstanding reaches zero becomes ``paid``. Whatever the loan cannot take comes back as
    ``excess``. Raises ``InvalidAmount`` for a non-positive amount and ``InvalidState`` when the
    loan is not active.
    """
    with transaction.atomic():
        locked = Loan.objects.select_for_update().get(pk=loan.pk)
        return repayment_apply(
            loan=locked,
            amount=amount,
            actor=actor,
            source=source,
            reference=reference,
            reason=reason,
            posted_at=posted_at,
        )


def repayment_apply(
    *,
    loan: Loan,
    amount: Decimal,
    actor: Actor,
    source: str,
    reference: str = "",
    reason: str = "",
    posted_at: datetime | None = None,
) -> PostingResult:
    """``repayment_post`` for a ``loan`` whose row the caller has locked (``select_for_update``) in the
    transaction it is in, and read under that lock: the M-Pesa engine locks a borrower's loans together
    and posts to them in turn. Changes ``loan`` in place. Raises as ``repayment_post`` does."""
    if not transaction.get_connection().in_atomic_block:
        raise TransactionManagementError(
            "repayment_apply needs the caller's transaction holding the loan's lock"
        )
    amount = to_money(amount)
    if amount <= 0:
        raise InvalidAmount("a repayment must be more than zero")
    locked = loan
    if locked.status != Loan.Status.ACTIVE:
        raise InvalidState(f"{locked.loan_number} is {locked.get_status_display().lower()}, not active")
    balances = Split(
        penalties=locked.penalties, fees=locked.fees, interest=locked.interest, principal=locked.principal
    )
    applied, excess = split_payment(balances, amount)
    if applied.total == 0:
        return PostingResult(loan=locked, repayment=None, applied=ZERO, excess=excess)
    for part in ("penalties", "fees", "interest", "principal"):
        setattr(locked, part, getattr(locked, part) - getattr(applied, part))
    update_fields = ["penalties", "fees", "interest", "principal", "updated_at"]
    if locked.outstanding == 0:
        locked.status = Loan.Status.PAID
        locked.paid_at = timezone.now()
        update_fields += ["status", "paid_at"]
    save_fields(locked, update_fields)
    repayment = create_row(
        Repayment,
        loan=locked,
        kind=Repayment.Kind.POSTING,
        amount=applied.total,
        penalties=applied.penalties,
        fees=applied.fees,
        interest=applied.interest,
        principal=applied.principal,
        reference=reference,
        source=source,
        reason=reason,
        posted_at=posted_at or timezone.now(),
    )
    audit_record(
        action="repayment.posted",
        actor=actor,
        loan=locked,
        obj=repayment,
        amount=applied.total,
        reason=reason,
        data={
            "reference": reference,
            "source": source,
            "split": applied.as_dict(),
            "excess": f"{excess:.2f}",
            "outstanding_after": f"{locked.outstanding:.2f}",
            "status_after": locked.status,
        },
    )
    return PostingResult(loan=locked, repayment=repayment, applied=applied.total, excess=excess)


def repayment_reverse(*, repayment: Repayment, actor: Actor, reason: str) -> Repayment:
    """Undo a posting exactly: each part of its split goes back on the loan; a paid loan reopens; a
    posting paid from the borrower's credit puts that money back in their credit.

    Both the posting and the new reversal row are kept. Returns the reversal. Raises
    ``InvalidInput`` without a reason and ``InvalidState`` if it is not a posting or was already
    reversed.
    """
    if not reason or not reason.strip():
        raise InvalidInput("a reversal needs a reason")
    with transaction.atomic():
        # Borrower first (the lock order): a reversal of a credit posting writes to their credit.
        borrower_id = Loan.objects.values_list("borrower_id", flat=True).get(pk=repayment.loan_id)
        Borrower.objects.select_for_update().get(pk=borrower_id)
        loan = Loan.objects.select_for_update().get(pk=repayment.loan_id)
        posting = Repayment.objects.select_for_update().get(pk=repayment.pk)
        if posting.kind != Repayment.Kind.POSTING:
            raise InvalidState("only a posting can be reversed")
        if Repayment.objects.filter(reversal_of=posting).exists():
            raise InvalidState(f"repayment {posting.pk} is already reversed")
        for part, value in posting.split.items():
            setattr(loan, part, getattr(loan, part) + value)
        update_fields = ["penalties", "fees", "interest", "principal", "updated_at"]
        if loan.status == Loan.Status.PAID:
            loan.status = Loan.Status.ACTIVE
            loan.paid_at = None
            update_fields += ["status", "paid_at"]
        loan.save(update_fields=update_fields)
        reversal = Repayment.objects.create(
            loan=loan,
            kind=Repayment.Kind.REVERSAL,
            amount=posting.amount,
            penalties=posting.penalties,
            fees=posting.fees,
            interest=posting.interest,
            principal=posting.principal,
            reference=posting.reference,
            source=posting.source,
            reason=reason.strip(),
            reversal_of=posting,
        )
        if posting.source == CREDIT_SOURCE:
            borrower_credit_add(
                borrower=loan.borrower,
                amount=posting.amount,
                actor=actor,
                reference=posting.reference,
                reason=f"reversal of a posting paid from credit: {reason.strip()}",
            )
        audit_record(
            action="repayment.reversed",
            actor=actor,
            loan=loan,
            obj=reversal,
            amount=posting.amount,
            reason=reason.strip(),
            data={
                "reversal_of": posting.pk,
                "reference": posting.reference,
                "split": {part: f"{value:.2f}" for part, value in posting.split.items()},
                "outstanding_after": f"{loan.outstanding:.2f}",
                "status_after": loan.status,
            },
        )
    return reversal


def loan_write_off(*, loan: Loan, actor: Actor, reason: str) -> Loan:
    """Write off an active loan (its balances stay as they are, for the record). Raises
    ``InvalidInput`` without a reason and ``InvalidState`` unless the loan is active."""
    if not reason or not reason.strip():
        raise InvalidInput("a write-off needs a reason")
    with transaction.atomic():
        locked = Loan.objects.select_for_update().get(pk=loan.pk)
        if locked.status != Loan.Status.ACTIVE:
            raise InvalidState(f"{locked.loan_number} is not active")
        locked.status = Loan.Status.WRITTEN_OFF
        locked.save(update_fields=["status", "updated_at"])
        audit_record(
            action="loan.written_off",
            actor=actor,
            loan=locked,
            obj=locked,
            amount=locked.outstanding,
            reason=reason.strip(),
        )
    return locked


# What staff may change on a loan directly; its money moves only through postings and reversals.
LOAN_EDITABLE_FIELDS = ("due_date", "disbursed_on", "loan_officer")


def loan_update(*, loan: Loan, changes: dict[str, object], actor: Actor, reason: str = "") -> Loan:
    """Change a loan's dates or officer (never its money) and audit each change with before and
    after. Returns the loan. Raises ``InvalidInput`` for a field that cannot be edited this way."""
    refused = set(changes) - set(LOAN_EDITABLE_FIELDS)
    if refused:
        raise InvalidInput(f"{', '.join(sorted(refused))} cannot be edited; money moves through postings")
    return audited_update(loan, changes=changes, action="loan.updated", actor=actor, reason=reason)
