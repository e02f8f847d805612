"""The repayment waterfall, as a pure function: penalties, then fees, then interest, then principal."""

from dataclasses import dataclass
from decimal import Decimal

from core.money import ZERO

ORDER = ("penalties", "fees", "interest", "principal")


@dataclass(frozen=True, slots=True)
class Split:
    penalties: Decimal = ZERO
    fees: Decimal = ZERO
    interest: Decimal = ZERO
    principal: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.penalties + self.fees + self.interest + self.principal

    def as_dict(self) -> dict[str, str]:
        return {part: f"{getattr(self, part):.2f}" for part in ORDER}


def split_payment(balances: Split, amount: Decimal) -> tuple[Split, Decimal]:
    """Split ``amount`` over the outstanding ``balances`` in waterfall order.

    Returns ``(applied, excess)``: how much goes to each part, and what is left when the balances
    are all cleared. ``applied.total + excess == amount`` always.
    """
    remaining = amount
    applied: dict[str, Decimal] = {}
    for part in ORDER:
        take = min(remaining, getattr(balances, part))
        applied[part] = take
        remaining -= take
    return Split(**applied), remaining
