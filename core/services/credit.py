"""A borrower's credit balance: money that belongs to them but to no loan, moved only through its
ledger (``CreditEntry``), under the borrower's row lock and audited.

Its own module because both loans (a reversal of a posting paid from credit puts the money back) and
borrowers (excess over a loan becomes credit) need it, and neither should import the other.
"""

from decimal import Decimal

from django.db import transaction

from core.actors import Actor
from core.exceptions import InvalidAmount, InvalidState
from core.models import Borrower, CreditEntry
from core.money import to_money
from core.services.audit import audit_record


def _credit_move(
    *, borrower: Borrower, amount: Decimal, actor: Actor, reference: str, reason: str, action: str
) -> CreditEntry:
    with transaction.atomic():
        locked = Borrower.objects.select_for_update().get(pk=borrower.pk)
        balance = locked.credit_balance + amount
        if balance < 0:
            raise InvalidState(f"credit balance is {locked.credit_balance:.2f}, less than {-amount:.2f}")
        locked.credit_balance = balance
        locked.save(update_fields=["credit_balance", "updated_at"])
        entry = CreditEntry.objects.create(
            borrower=locked, amount=amount, balance_after=balance, reference=reference, reason=reason
        )
        audit_record(
            action=action,
            actor=actor,
            borrower=locked,
            obj=entry,
            amount=abs(amount),
            reason=reason,
            data={"reference": reference, "balance_after": f"{balance:.2f}"},
        )
    borrower.credit_balance = balance
    return entry


def borrower_credit_add(
    *, borrower: Borrower, amount: Decimal, actor: Actor, reference: str = "", reason: str = ""
) -> CreditEntry:
    """Hold ``amount`` for the borrower as credit (an overpayment). Returns the ledger entry.
    Raises ``InvalidAmount`` for a non-positive amount."""
    amount = to_money(amount)
    if amount <= 0:
        raise InvalidAmount("credit must be more than zero")
    return _credit_move(
        borrower=borrower,
        amount=amount,
        actor=actor,
        reference=reference,
        reason=reason,
        action="credit.added",
    )


def borrower_credit_use(
    *, borrower: Borrower, amount: Decimal, actor: Actor, reference: str = "", reason: str = ""
) -> CreditEntry:
    """Take ``amount`` out of the borrower's credit (refund, or applied to a loan). Raises
    ``InvalidAmount`` for a non-positive amount and ``InvalidState`` when the credit is short."""
    amount = to_money(amount)
    if amount <= 0:
        raise InvalidAmount("the amount must be more than zero")
    return _credit_move(
        borrower=borrower,
        amount=-amount,
        actor=actor,
        reference=reference,
        reason=reason,
        action="credit.used",
    )
