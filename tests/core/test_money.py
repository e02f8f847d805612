from decimal import Decimal

import pytest

from core.exceptions import InvalidAmount
from core.money import format_money, to_money


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("5.00", Decimal("5.00")),
        ("10", Decimal("10.00")),
        (" 1,250.50 ", Decimal("1250.50")),
        (5, Decimal("5.00")),
        (Decimal("0.1"), Decimal("0.10")),
        ("-20", Decimal("-20.00")),
    ],
)
def test_parses_text_and_integers_to_two_places(raw, expected):
    amount = to_money(raw)
    assert amount == expected
    assert amount.as_tuple().exponent == -2


@pytest.mark.parametrize(
    "raw", [0.1, "", "abc", "1.005", "NaN", "Infinity", None, True, "1e20", "1e30", "1000000000000"]
)
def test_refuses_floats_garbage_and_sub_cent_amounts(raw):
    with pytest.raises(InvalidAmount):
        to_money(raw)


def test_format_for_people():
    assert format_money(Decimal("1250.5")) == "1,250.50"


def test_largest_amount_the_database_holds():
    assert to_money("999999999999.99") == Decimal("999999999999.99")
