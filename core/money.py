"""Money: Decimal in shillings with two places, one precision for every table."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import models

from core.exceptions import InvalidAmount

MAX_DIGITS = 14
DECIMAL_PLACES = 2
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def MoneyField(**kwargs) -> models.DecimalField:
    """A ``DecimalField`` with the project's one precision (12 digits of shillings, 2 of cents)."""
    kwargs.setdefault("max_digits", MAX_DIGITS)
    kwargs.setdefault("decimal_places", DECIMAL_PLACES)
    return models.DecimalField(**kwargs)


def to_money(value: object) -> Decimal:
    """Parse ``value`` (``str``, ``int`` or ``Decimal``; never ``float``) into a Decimal with two places.

    Accepts what providers and CSV files send: ``"5.00"``, ``"10"``, ``" 1,250.50 "``, ``5``.
    Raises ``InvalidAmount`` for anything else, for more than two decimal places, and for a value
    too large for the database.
    """
    if isinstance(value, bool | float):
        # A float has already lost cents (0.1 + 0.2); callers must pass the original text.
        raise InvalidAmount(f"amount {value!r} must be given as text or an integer, not a float")
    if isinstance(value, int | Decimal):
        amount = Decimal(value)
    elif isinstance(value, str):
        text = value.strip().replace(",", "")
        if not text:
            raise InvalidAmount("amount is empty")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise InvalidAmount(f"amount {value!r} is not a number") from None
    else:
        raise InvalidAmount(f"amount {value!r} is not a number")
    if not amount.is_finite():
        raise InvalidAmount(f"amount {value!r} is not a number")
    # Checked before quantize, which cannot represent a huge value ("1e30") at two places.
    if amount != 0 and amount.adjusted() >= MAX_DIGITS - DECIMAL_PLACES:
        raise InvalidAmount(f"amount {value!r} is too large")
    if amount != amount.quantize(CENT):
        raise InvalidAmount(f"amount {value!r} has more than two decimal places")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def format_money(amount: Decimal) -> str:
    """``Decimal("1250.5")`` -> ``"1,250.50"`` for people (SMS, screens)."""
    return f"{amount.quantize(CENT):,.2f}"


def format_kes(amount: Decimal) -> str:
    """``Decimal("1250.5")`` -> ``"KES 1,250.50"``: an amount as every text and page shows it."""
    return f"KES {format_money(amount)}"
