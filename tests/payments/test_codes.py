import datetime
from decimal import Decimal

import pytest

from core.dates import NAIROBI, nairobi_midnight
from core.money import format_kes
from payments.codes import is_issued_trans_id, is_short_code, is_trans_id


@pytest.mark.parametrize("text", ["RKL51ZDR4F", "SK12AB", "a" * 32])
def test_receipt_numbers_are_letters_and_digits(text):
    assert is_trans_id(text)


@pytest.mark.parametrize(
    "text",
    ["", "RKL51", "a" * 33, "RKL51ZDR4F\n", " RKL51ZDR4F", "RKL-51ZDR4F", "RKL51ZDR4\uff26", "١٢٣٤٥٦٧"],
)
def test_anything_else_is_not_a_receipt_number(text):
    assert not is_trans_id(text)


@pytest.mark.parametrize("text", ["RKL51ZDR4F", "QK99ZZ88YY", "S000000001"])
def test_a_receipt_number_in_a_persons_text_has_the_shape_m_pesa_issues(text):
    assert is_issued_trans_id(text)


@pytest.mark.parametrize(
    "text",
    [
        "PAYMENT",  # a word: is_trans_id would take it
        "MALIPOYANGU",
        "ABCDEFGHIJ",  # no digit
        "1KL51ZDR4F",  # a digit first
        "RKL51ZDR4",
        "RKL51ZDR4FX",
        "rkl51zdr4f",  # the SMS parser upper-cases first
        "RKL51ZDR\u0664F",  # an Arabic-Indic four
        "RKL51ZDR4\uff26",  # a full-width F
        "RKL51ZDR4F\n",
        "LOAN-00010",
    ],
)
def test_anything_else_in_a_persons_text_is_not_a_receipt_number(text):
    assert not is_issued_trans_id(text)


@pytest.mark.parametrize("text", ["60098", "600984", "4012345"])
def test_short_codes_are_five_to_seven_digits(text):
    assert is_short_code(text)


@pytest.mark.parametrize(
    "text", ["6009", "60098412", "600984\n", "\uff16\uff10\uff10\uff19\uff18\uff14", "60098²", "60 984"]
)
def test_anything_else_is_not_a_short_code(text):
    assert not is_short_code(text)


def test_a_nairobi_day_begins_at_nairobi_midnight():
    start = nairobi_midnight(datetime.date(2026, 12, 4))
    assert start.tzinfo is NAIROBI
    assert start.astimezone(datetime.UTC) == datetime.datetime(2026, 12, 3, 21, 0, tzinfo=datetime.UTC)


def test_amounts_are_shown_in_kes_with_thousands_and_cents():

    assert format_kes(Decimal("1250.5")) == "KES 1,250.50"
    assert format_kes(Decimal("250000")) == "KES 250,000.00"
