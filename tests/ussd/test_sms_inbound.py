"""/ussd/sms/inbound/: keywords in both languages, each Africa's Talking id handled once, replies
through the outbox (one GSM-7 segment), moves by SMS, and the reply sent to a fake Africa's Talking."""

from decimal import Decimal as D

import pytest

from core.models import Loan, OutboxMessage
from core.services.outbox import outbox_deliver_next
from tests.ussd.conftest import PHONE, form_fixture, make_loan, pay
from tests.ussd.fake_africastalking import africastalking_fixture, fake_africastalking_fixture  # noqa: F401
from ussd.clients.sms import is_gsm7, sms_segments
from ussd.models import InboundRequest, IncomingSms
from ussd.services import sms as sms_service
from ussd.texts import en, sw

pytestmark = pytest.mark.django_db


@pytest.fixture
def text_in(post_form):
    """Send an incoming SMS; returns the reply queued for it (or None)."""
    counter = iter(range(1000))

    def send(text: str, *, sender: str = PHONE, sms_id: str | None = None) -> OutboxMessage | None:
        sms_id = sms_id or f"7a3c5e1f-0000-4e6a-8c1f-{next(counter):012d}"
        response = post_form(
            "/ussd/sms/inbound/", form_fixture("sms_inbound.txt", text=text, id=sms_id, **{"from": sender})
        )
        assert response.status_code == 200, response.content
        incoming = IncomingSms.objects.get(provider_id=sms_id)
        return incoming.reply

    return send


def body(reply: OutboxMessage | None) -> str:
    assert reply is not None
    assert reply.recipient == PHONE and reply.channel == "sms"
    assert is_gsm7(reply.body) and sms_segments(reply.body) == 1, reply.body
    return reply.body


def test_bal_answers_each_active_loan(text_in, borrower, loans, paybill):
    due = [loan.due_date.strftime("%d/%m/%Y") for loan in loans]
    assert body(text_in("Bal")) == (
        f"HAVEN GRAZURI balance: LOAN-000101 KES 5,000.00 due {due[0]}; LOAN-000102 KES 8,000.00 due {due[1]}"
    )
    incoming = IncomingSms.objects.get()
    assert (incoming.borrower, incoming.keyword, incoming.phone) == (borrower, "balance", PHONE)


@pytest.mark.parametrize("text", ["SALIO", " salio ", "Salio  "])
def test_salio_answers_in_kiswahili_whatever_the_case_and_spaces(text_in, borrower, loans, paybill, text):
    assert body(text_in(text)).startswith("HAVEN GRAZURI salio: LOAN-000101 KES 5,000.00 tarehe ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("LOANS", en.SMS_LOANS.format(loans="LOAN-000101, LOAN-000102", paybill="600984")),
        ("mikopo", sw.SMS_LOANS.format(loans="LOAN-000101, LOAN-000102", paybill="600984")),
        ("PAY", en.SMS_PAY.format(paybill="600984", account=en.SMS_PAY_ACCOUNT)),
        ("Lipa", sw.SMS_PAY.format(paybill="600984", account=sw.SMS_PAY_ACCOUNT)),
        ("HELP", en.SMS_HELP),
        ("msaada", sw.SMS_HELP),
        ("what is my balance?", en.SMS_HELP),  # unknown text: help, in the borrower's language
        ("", en.SMS_HELP),
        ("MOVE", en.SMS_MOVE_USAGE),
        ("hamisha", sw.SMS_MOVE_USAGE),
    ],
)
def test_keywords(text_in, borrower, loans, paybill, text, expected):
    assert body(text_in(text)) == expected


def test_pay_with_one_loan_names_it(text_in, borrower, paybill):
    make_loan(borrower, "LOAN-000101", "5000")
    assert body(text_in("pay")) == en.SMS_PAY.format(paybill="600984", account="LOAN-000101")


def test_no_active_loan(text_in, borrower, paybill):
    assert body(text_in("BAL")) == en.SMS_NO_LOANS
    assert body(text_in("SALIO")) == sw.SMS_NO_LOANS


def test_move_code_loan_moves_the_payment_and_the_confirmation_is_the_reply(
    text_in, borrower, loans, paybill
):
    tx = pay(paybill)
    assert text_in(f"MOVE {tx.trans_id.lower()} loan-000102") is None
    assert Loan.objects.get(loan_number="LOAN-000102").outstanding == D("7000.00")
    confirmation = OutboxMessage.objects.get(dedupe_key__startswith="borrower-move:")
    assert (confirmation.recipient, "LOAN-000102" in confirmation.body) == (PHONE, True)


def test_move_loan_alone_means_the_latest_payment(text_in, borrower, loans, paybill):
    pay(paybill)
    assert text_in("hamisha 102") is None
    assert Loan.objects.get(loan_number="LOAN-000102").outstanding == D("7000.00")


def test_move_answers_what_could_not_be_done(text_in, borrower, loans, paybill):
    tx = pay(paybill)
    assert body(text_in("MOVE LOAN-000101")) == en.SMS_MOVE_ALREADY.format(
        code=tx.trans_id, loan="LOAN-000101"
    )
    assert body(text_in("MOVE LOAN-000999")) == en.SMS_MOVE_NOT_YOUR_LOAN.format(loan="LOAN-000999")
    assert body(text_in("MOVE QK99ZZ88YY LOAN-000102")) == en.SMS_MOVE_NO_PAYMENT.format(code="QK99ZZ88YY")
    old = pay(paybill, trans_id="SLK1OLD0PA", hours_ago=60)
    assert body(text_in(f"HAMISHA {old.trans_id} LOAN-000102")) == sw.SMS_MOVE_REVIEW.format(
        code=old.trans_id
    )


def test_each_id_is_handled_once_however_often_it_is_delivered(text_in, borrower, loans, paybill):
    first = text_in("BAL", sms_id="dup-1")
    again = text_in("BAL", sms_id="dup-1")
    assert first == again
    assert OutboxMessage.objects.filter(dedupe_key="sms-reply:dup-1").count() == 1
    outcomes = list(
        InboundRequest.objects.filter(kind="sms").order_by("id").values_list("outcome", flat=True)
    )
    assert outcomes == ["handled", "duplicate"]


def test_an_unregistered_number_gets_a_generic_reply_with_no_data(text_in, borrower, loans, paybill):
    reply = text_in("BAL", sender="+254799888777")
    assert reply is not None and reply.recipient == "+254799888777"
    assert reply.body == sms_service.not_registered_reply()
    assert "LOAN" not in reply.body and sms_segments(reply.body) == 1 and is_gsm7(reply.body)
    assert IncomingSms.objects.get().borrower is None


def test_a_sender_that_is_no_phone_number_gets_no_reply(text_in, borrower):
    assert text_in("BAL", sender="AFRICASTKNG") is None


def test_an_error_keeps_the_request_and_a_redelivery_handles_it(
    post_form, borrower, loans, paybill, monkeypatch
):
    def broken(**kwargs):
        raise RuntimeError("deadlock")

    body_bytes = form_fixture("sms_inbound.txt", id="retry-1")
    monkeypatch.setattr(sms_service, "loan_views", broken)
    assert post_form("/ussd/sms/inbound/", body_bytes).status_code == 503
    assert not IncomingSms.objects.exists()
    assert InboundRequest.objects.get().outcome == "error"
    monkeypatch.undo()
    assert post_form("/ussd/sms/inbound/", body_bytes).status_code == 200
    assert IncomingSms.objects.get().reply is not None


def test_secret_malformed_and_oversized(post_form, borrower):
    assert post_form("/ussd/sms/inbound/", form_fixture("sms_inbound.txt"), secret="x").status_code == 403
    assert post_form("/ussd/sms/inbound/", form_fixture("sms_inbound.txt"), secret=None).status_code == 403
    assert not InboundRequest.objects.exists()
    assert post_form("/ussd/sms/inbound/", b"text=BAL&from=%2B254712345678").status_code == 400
    assert (
        post_form("/ussd/sms/inbound/", form_fixture("sms_inbound.txt") + b"&x=" + b"y" * 17000).status_code
        == 413
    )
    assert list(InboundRequest.objects.values_list("outcome", flat=True)) == ["malformed", "malformed"]
    assert not IncomingSms.objects.exists()


def test_the_reply_goes_out_through_the_sdk_to_africastalking(
    text_in, borrower, loans, paybill, africastalking
):
    reply = text_in("BAL")  # the outbox's doorbell rings on commit and the reply goes out
    reply.refresh_from_db()
    assert reply.status == "sent"
    [request] = africastalking.requests
    assert (request.form["to"], request.form["message"]) == (PHONE, reply.body)
    assert reply.provider_id == africastalking.message_ids[0]
    assert outbox_deliver_next() is None  # nothing left to send


@pytest.mark.parametrize("language", ["en", "sw"])
def test_every_reply_fits_one_segment_with_the_longest_values(borrower, paybill, language):
    borrower.preferred_language = language
    borrower.save()
    for n in range(6):
        make_loan(borrower, f"LOAN-{123000 + n:06d}", "9999999.99")
    for text in ("BAL", "SALIO", "LOANS", "MIKOPO", "PAY", "LIPA", "HELP", "MSAADA", "MOVE", "HAMISHA"):
        reply = sms_service._reply_for(sms_service.parse_command(text), borrower, PHONE)
        assert reply is not None and is_gsm7(reply) and sms_segments(reply) == 1 and len(reply) <= 160, reply
    texts = en if language == "en" else sw
    values = {
        "code": "SLK4H7RT2P",
        "loan": "LOAN-000123",
        "paybill": "4123456",
        "outstanding": "9,999,999.99",
    }
    for name in (
        "SMS_MOVED",
        "SMS_MOVE_ALREADY",
        "SMS_MOVE_REVIEW",
        "SMS_MOVE_NO_PAYMENT",
        "SMS_MOVE_NOT_YOUR_LOAN",
        "SMS_PAY_DETAILS",
        "SMS_NOT_REGISTERED",
    ):
        text = getattr(texts, name).format(contact="0700 123 456", **values)
        assert is_gsm7(text) and len(text) <= 160, text
