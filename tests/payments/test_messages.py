"""Receipts fit one GSM-7 SMS segment in both languages, whatever the amounts and loan numbers."""

from decimal import Decimal as D

import pytest

from payments.messages import ReceiptLine, receipt_text
from ussd.clients.sms import is_gsm7, sms_segments


@pytest.mark.parametrize("language", ["en", "sw"])
@pytest.mark.parametrize(
    ("amount", "lines", "credit"),
    [
        (D("500"), [ReceiptLine("LOAN-000123", D("1500"))], D("0")),
        (D("999999999.99"), [ReceiptLine("LOAN-1234567890", D("999999999.99"))], D("0")),
        (D("2000"), [ReceiptLine("LOAN-000123", D("0"))], D("0")),
        (D("2000"), [ReceiptLine("LOAN-000123", D("0")), ReceiptLine("LOAN-000124", D("700"))], D("0")),
        (
            D("99999999"),
            [ReceiptLine("LOAN-000123", D("0")), ReceiptLine("LOAN-000124", D("0"))],
            D("99999000.50"),
        ),
        (D("10"), [], D("10")),
    ],
)
def test_every_receipt_is_one_gsm7_segment(language, amount, lines, credit):
    text = receipt_text(language=language, amount=amount, trans_id="RKL51ZDR4F", loans=lines, credit=credit)
    assert is_gsm7(text) and sms_segments(text) == 1 and len(text) <= 160
    assert "RKL51ZDR4F" in text


def test_split_payment_shows_what_is_left_on_every_loan_it_touched():
    text = receipt_text(
        language="en",
        amount=D("2000"),
        trans_id="RKL51ZDR4F",
        loans=[ReceiptLine("LOAN-000123", D("0")), ReceiptLine("LOAN-000124", D("700"))],
        credit=D("0"),
    )
    assert text == (
        "HAVEN GRAZURI: KES 2,000.00 received (RKL51ZDR4F) for LOAN-000123 +1. Balance KES 700.00. "
        "Wrong loan? Reply MOVE RKL51ZDR4F LOAN-NUMBER"
    )


def test_kiswahili_receipt_when_the_loan_is_paid_off():
    text = receipt_text(
        language="sw",
        amount=D("500"),
        trans_id="RKL51ZDR4F",
        loans=[ReceiptLine("LOAN-000123", D("0"))],
        credit=D("0"),
    )
    assert text == (
        "HAVEN GRAZURI: Tumepokea KES 500.00 (RKL51ZDR4F) kwa LOAN-000123. Mkopo umelipwa kikamilifu. Asante! "
        "Si mkopo sahihi? Jibu HAMISHA RKL51ZDR4F NAMBARI-YA-MKOPO"
    )
