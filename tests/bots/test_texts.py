"""Texts fit Telegram: messages within 4096 characters, tap answers within 200, whatever the payment holds."""

import datetime
from decimal import Decimal as D

from bots import texts


def test_an_alert_with_the_longest_realistic_values_fits_one_message():
    text = texts.payment_text(
        title=texts.ALERT_TITLES["review_request"],
        trans_id="RKL51ZDR4FXXXXXXXXXXXXXXXXXXXXXX",
        amount=D("999999999999.99"),
        paid_at=datetime.datetime(2026, 11, 20, 12, 13, tzinfo=datetime.UTC),
        payer="MARY-ANNE WANJIKU NJERI-KAMAU " * 4 + ", hashed number",
        bill_reference="X" * 64,
        status="Unmatched",
        notes=[f"note {n}: " + "tried the loan number, the phone, the national ID " * 20 for n in range(40)],
        url="https://pay.haven.example/payments/transactions/RKL51ZDR4FXXXXXXXXXXXXXXXXXXXXXX/",
        outcome=texts.outcome_line(
            what="Assigned to LOAN-999999", by="a" * 150, at=datetime.datetime.now(datetime.UTC)
        ),
        request=texts.review_request_line(
            borrower="MARY-ANNE WANJIKU NJERI-KAMAU " * 8,
            phone="2547*****678",
            loan_number="LOAN-" + "9" * 27,
            reason="the move was refused (" + "credit already spent " * 100 + ")",
            at=datetime.datetime.now(datetime.UTC),
        ),
    )
    assert len(text) <= texts.MESSAGE_LIMIT
    assert "note 39" in text and "note 0:" not in text  # the newest notes are kept
    assert "MARY-ANNE WANJIKU NJERI-KAMAU MARY-ANNE" in text and "asked from 2547*****678" in text
    assert text.endswith("by " + "a" * 150 + ", " + text.rsplit(", ", 1)[1])


def test_fixed_texts_fit():
    for text in (texts.HELP, texts.STRANGER, texts.LINK_FAILED, texts.UNKNOWN):
        assert 0 < len(text) <= texts.MESSAGE_LIMIT
    for answer in (
        texts.TAP_STRANGER,
        texts.TAP_INVALID,
        texts.TAP_EXPIRED,
        texts.TAP_NOT_YOURS,
        texts.TAP_OUTSIDE_PORTFOLIO,
        texts.TAP_BUSY,
        texts.TAP_CANCELLED,
    ):
        assert 0 < len(answer) <= texts.ANSWER_LIMIT
    assert len(texts.fit("x" * 500, texts.ANSWER_LIMIT)) == texts.ANSWER_LIMIT
