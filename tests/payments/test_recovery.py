"""One road for every recovered payment: stored as a confirmation would be, posted once, and a
confirmation that arrives afterwards is a duplicate."""

import json
from decimal import Decimal as D

import httpx
import pytest

from core.models import OutboxMessage
from payments.emulator.models import EmulatedPayment
from payments.models import CallbackRequest, MpesaTransaction
from payments.parsing import parse_c2b_body
from payments.services.daraja import mpesa_simulate
from payments.services.recovery import transaction_record_recovered
from tests.payments.conftest import daraja_payload


def _recover(config, payload: dict, source: str = "pull") -> bool:
    return transaction_record_recovered(
        config=config,
        payload=parse_c2b_body(json.dumps(payload)),
        source=source,
        evidence={"seen": "in a test", "TransID": payload["TransID"]},
    )


@pytest.mark.django_db
def test_a_recovered_payment_is_posted_once_and_the_late_callback_is_a_duplicate(
    mpesa_config, loan, post_callback, django_capture_on_commit_callbacks
):
    payload = daraja_payload("confirmation_hashed.json")
    with django_capture_on_commit_callbacks(execute=True):
        assert _recover(mpesa_config, payload) is True
        assert _recover(mpesa_config, payload, source="statement") is False

    tx = MpesaTransaction.objects.get()
    assert (tx.trans_id, tx.source, tx.status, tx.amount) == ("RKL51ZDR4F", "pull", "processed", D("1500.00"))
    assert json.loads(tx.raw_body) == {"seen": "in a test", "TransID": "RKL51ZDR4F"}
    assert tx.notes[0] == "bill reference 'LOAN-000123' matched LOAN-000123"
    loan.refresh_from_db()
    assert loan.outstanding == D("3500.00")

    late = post_callback("confirmation", payload)

    assert (late.status_code, late.json()) == (200, {"ResultCode": 0, "ResultDesc": "Success"})
    assert MpesaTransaction.objects.get().source == "pull"
    duplicate = CallbackRequest.objects.get()
    assert (duplicate.kind, duplicate.outcome) == ("confirmation", "duplicate")
    loan.refresh_from_db()
    assert loan.outstanding == D("3500.00")  # posted once
    assert tx.allocations.count() == 1


@pytest.mark.django_db
def test_a_confirmation_is_a_callback_payment(post_callback, loan):
    post_callback("confirmation", daraja_payload("confirmation_hashed.json"))
    assert MpesaTransaction.objects.get().source == "callback"


@pytest.mark.django_db
def test_callback_is_not_a_recovery_road(mpesa_config):
    with pytest.raises(ValueError, match="not a recovery source"):
        _recover(mpesa_config, daraja_payload("confirmation_hashed.json"), source="callback")
    assert not MpesaTransaction.objects.exists()


@pytest.mark.urls("tests.payments.emulator_urls")
def test_a_lost_callback_is_in_the_emulators_ledger_and_nowhere_else(emulated_paybill):
    answer = mpesa_simulate(
        config=emulated_paybill,
        phone="0712345678",
        amount=700,
        bill_reference="LOAN-1",
        deliver_callbacks=False,
    )

    ledger = EmulatedPayment.objects.get()
    assert (ledger.trans_id, ledger.amount, ledger.msisdn) == (answer["TransID"], D("700.00"), "254712345678")
    assert ledger.callbacks_delivered is False and ledger.payload["BillRefNumber"] == "LOAN-1"
    assert not MpesaTransaction.objects.exists()
    assert not CallbackRequest.objects.exists()  # not even the validation was sent


@pytest.mark.urls("tests.payments.emulator_urls")
def test_a_delivered_payment_is_in_the_ledger_too(emulated_paybill):
    answer = mpesa_simulate(config=emulated_paybill, phone="0712345678", amount=500, bill_reference="")

    assert EmulatedPayment.objects.get().callbacks_delivered is True
    assert MpesaTransaction.objects.get().trans_id == answer["TransID"]


@pytest.mark.urls("tests.payments.emulator_urls")
def test_simulate_c2b_no_callback(emulated_paybill):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("simulate_c2b", phone="0712345678", amount="300", no_callback=True, stdout=out)

    ledger = EmulatedPayment.objects.get()
    assert f"TransID: {ledger.trans_id}" in out.getvalue()
    assert "callbacks were not delivered" in out.getvalue()
    assert not MpesaTransaction.objects.exists()


def test_the_sandbox_cannot_lose_a_callback():
    from payments.clients.daraja import DarajaClient, DarajaError

    client = DarajaClient("https://sandbox.safaricom.co.ke", "k", "s", timeout=5)
    with pytest.raises(DarajaError, match="only the local emulator"):
        client.simulate("600984", 100, "254712345678", "", deliver_callbacks=False)


# --- Receipts included: once per recovered payment, none for its late callback ------------------------


def the_receipt(loan, trans_id: str) -> None:
    """The borrower has exactly one SMS, the receipt of ``trans_id``, and it has gone."""
    texts = list(
        OutboxMessage.objects.filter(borrower=loan.borrower).values_list("channel", "recipient", "status")
    )
    assert texts == [("sms", "+254722000000", "sent")]
    receipt = OutboxMessage.objects.get(borrower=loan.borrower)
    assert f"({trans_id})" in receipt.body and "LOAN-000123" in receipt.body


def lost_payment(config, amount: int = 500) -> str:
    return mpesa_simulate(
        config=config,
        phone="0722000000",
        amount=amount,
        bill_reference="LOAN-000123",
        deliver_callbacks=False,
    )["TransID"]


def late_callback(config, trans_id: str) -> None:
    response = httpx.post(
        config.confirmation_url, json=EmulatedPayment.objects.get(trans_id=trans_id).payload
    )
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    assert CallbackRequest.objects.get(kind="confirmation").outcome == "duplicate"


@pytest.mark.urls("tests.payments.emulator_urls")
def test_a_payment_recovered_by_pull_sends_one_receipt_and_its_late_callback_none(emulated_paybill, loan):
    from payments.services.pull import mpesa_pull_transactions

    trans_id = lost_payment(emulated_paybill)

    mpesa_pull_transactions(config=emulated_paybill)
    mpesa_pull_transactions(config=emulated_paybill)  # the next pull finds it again: known
    the_receipt(loan, trans_id)

    late_callback(emulated_paybill, trans_id)
    the_receipt(loan, trans_id)


@pytest.mark.urls("tests.payments.emulator_urls")
def test_a_payment_recovered_by_a_status_query_sends_one_receipt_and_its_late_callback_none(
    emulated_paybill, loan
):
    from payments.services.status import status_query_request
    from tests.payments.test_status_query import answered

    trans_id = lost_payment(emulated_paybill)

    assert answered(status_query_request(trans_id=trans_id, user=None)).outcome == "created"
    the_receipt(loan, trans_id)
    assert answered(status_query_request(trans_id=trans_id, user=None)).outcome == "confirmed"
    the_receipt(loan, trans_id)

    late_callback(emulated_paybill, trans_id)
    the_receipt(loan, trans_id)


@pytest.mark.django_db
def test_a_payment_recovered_by_a_statement_sends_one_receipt_and_its_late_callback_none(
    mpesa_config, loan, post_callback, django_capture_on_commit_callbacks, tmp_path
):
    from payments.services.statements import statement_import

    statement = tmp_path / "statement.csv"
    statement.write_text(
        "Receipt No.,Completion Time,Details,Transaction Status,Paid In,Withdrawn,Balance,Other Party Info,A/C No.\n"
        "SAB7LQ2X9K,2024-03-05 08:30:12,Pay Bill,Completed,1500.00,,101500.00,254722000000 - NICHOLAS KIPRONO,"
        "LOAN-000123\n"
    )
    for _ in range(2):  # imported twice: known the second time
        with django_capture_on_commit_callbacks(execute=True):
            statement_import(path=statement, config=mpesa_config)
    the_receipt(loan, "SAB7LQ2X9K")

    late = post_callback(
        "confirmation",
        daraja_payload(
            "confirmation_hashed.json",
            TransID="SAB7LQ2X9K",
            TransTime="20240305083012",
            TransAmount="1500.00",
        ),
    )

    assert late.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    assert CallbackRequest.objects.get().outcome == "duplicate"
    the_receipt(loan, "SAB7LQ2X9K")
