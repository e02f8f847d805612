"""The alerts not covered in test_alerts.py, end to end through the fake Bot API: a payment that
failed to post, and a borrower's review request made on the real USSD and SMS endpoints; and what
an alert shows of the payment (the payer always masked)."""

import json
import re
from decimal import Decimal as D

import pytest

from bots.models import AlertMessage, PaymentAlert
from core.models import AuditEvent, OutboxMessage
from core.phones import mask_phone
from payments.models import MpesaTransaction
from tests.bots.conftest import link
from tests.bots.test_alerts import ADMIN_TG, OFFICER_TG, alert_in, answers, tap
from tests.factories import (
    AdminFactory,
    BorrowerFactory,
    LoanFactory,
    MpesaConfigurationFactory,
    OfficerFactory,
)
from tests.payments.conftest import daraja_payload
from tests.payments.test_processing import stored_payment
from tests.ussd.conftest import (  # noqa: F401 (fixtures)
    PHONE,
    _channel_settings,
    dial_fixture,
    form_fixture,
    make_loan,
    pay,
    post_form_fixture,
)
from ussd.models import IncomingSms
from ussd.services.pins import pin_set
from ussd.texts import en

pytestmark = pytest.mark.django_db

BUTTONS = ["Reprocess", "Assign…", "Mark reviewed"]


@pytest.fixture(name="admin")
def admin_fixture(telegram):
    return link(AdminFactory(username="amina", phone="+254700000001"), ADMIN_TG)


@pytest.fixture(name="officer")
def officer_fixture(telegram):
    return link(OfficerFactory(username="otieno", phone="+254700111222"), OFFICER_TG)


@pytest.fixture(name="process")
def process_fixture(django_capture_on_commit_callbacks):
    """Process a stored payment as the engine does; the outbox drains on commit (to the fake)."""
    from payments.services import transaction_process

    def run(tx: MpesaTransaction) -> MpesaTransaction:
        with django_capture_on_commit_callbacks(execute=True):
            return transaction_process(trans_id=tx.trans_id)

    return run


# --- a payment that failed to post ------------------------------------------------------------------
def test_a_failed_payment_alerts_the_admin_and_the_borrowers_officer_once_and_reprocess_posts_it(
    mpesa_config, process, admin, officer, telegram, post_update, monkeypatch
):
    borrower = BorrowerFactory(phones=["+254722000000"], full_name="Nicholas Kiprono", loan_officer=officer)
    loan = LoanFactory(
        borrower=borrower, loan_number="LOAN-000060", principal=D("5000"), principal_disbursed=D("5000")
    )

    def broken(**kwargs):
        raise RuntimeError("ledger exploded")

    # A defect after matching (as tests/payments/test_processing.py makes one): not transient.
    monkeypatch.setattr("payments.services.processing.queue_payment_news", broken)
    tx = process(stored_payment(mpesa_config, bill_reference="LOAN-000060"))
    assert (tx.status, tx.last_error) == ("failed", "RuntimeError: ledger exploded")

    for chat_id in (ADMIN_TG, OFFICER_TG):
        assert len(telegram.sent("sendMessage", chat_id=chat_id)) == 1
        _, shown, buttons = alert_in(telegram, chat_id)
        assert shown["text"].startswith("Payment failed to post: RKL51ZDR4F\nKES 1,000.00 paid 20 Nov 2026")
        assert "RuntimeError: ledger exploded" in shown["text"]
        assert list(buttons) == BUTTONS
    alert = PaymentAlert.objects.get()
    assert (alert.kind, alert.resolved_at) == ("failed", None)
    assert set(alert.messages.values_list("chat_id", flat=True)) == {ADMIN_TG, OFFICER_TG}

    # Reprocess while the cause is still there: it fails again, no second alert, fresh buttons.
    message_id, _, buttons = alert_in(telegram, OFFICER_TG)
    tap(post_update, OFFICER_TG, buttons["Reprocess"], OFFICER_TG, message_id)
    assert answers(telegram)[-1].startswith("✅ Reprocessed (now failed) by otieno,")
    assert MpesaTransaction.objects.get().attempts == 2
    # The engine reported the failure twice to each of them; each chat shows it once.
    assert OutboxMessage.objects.filter(channel="telegram", context__kind="failed").count() == 4
    for chat_id in (ADMIN_TG, OFFICER_TG):
        assert len(telegram.sent("sendMessage", chat_id=chat_id)) == 1
    _, _, fresh = alert_in(telegram, OFFICER_TG)
    assert list(fresh) == BUTTONS

    # The cause removed, Reprocess posts it and every copy of the alert says so, without buttons.
    monkeypatch.undo()
    tap(post_update, OFFICER_TG, fresh["Reprocess"], OFFICER_TG, message_id)
    tx.refresh_from_db()
    loan.refresh_from_db()
    assert (tx.status, tx.borrower, loan.principal) == ("processed", borrower, D("4000.00"))
    assert answers(telegram)[-1].startswith("✅ Reprocessed (now processed) by otieno,")
    for chat_id, shown_id in AlertMessage.objects.values_list("chat_id", "message_id"):
        shown = telegram.shown(chat_id, shown_id)
        assert "✅ Reprocessed (now processed) by otieno," in shown["text"]
        assert not shown.get("reply_markup")
    assert PaymentAlert.objects.get().resolved_at is not None
    assert AuditEvent.objects.filter(action="mpesa.reprocessed", actor_user=officer).count() == 2


# --- a borrower's review request ----------------------------------------------------------------------
PIN = "4829"


@pytest.fixture(name="borrower")
def borrower_fixture(officer):
    """A borrower of the officer's with two active loans and a USSD PIN."""
    borrower = BorrowerFactory(phones=[PHONE], full_name="Wanjiru Kamau", loan_officer=officer)
    make_loan(borrower, "LOAN-000101", "5000", due_in=5)
    make_loan(borrower, "LOAN-000102", "8000", due_in=20)
    pin_set(borrower=borrower, pin=PIN)
    return borrower


def review_alerts(telegram) -> dict[int, tuple[int, dict, dict]]:
    """The review request alert in each chat that has it: (message id, what it shows, its buttons)."""
    alert = PaymentAlert.objects.get(kind="review_request")
    return {
        chat_id: (
            message_id,
            telegram.shown(chat_id, message_id),
            dict(telegram.buttons(chat_id, message_id)),
        )
        for chat_id, message_id in alert.messages.values_list("chat_id", "message_id")
    }


def test_a_review_request_by_ussd_alerts_once_with_buttons_and_mark_reviewed_resolves_it(
    mpesa_config, admin, officer, borrower, telegram, dial, post_update
):
    tx = pay(mpesa_config, hours_ago=50)  # too old for the borrower to move it alone
    review = f"END {en.MOVE_REVIEW.format(code=tx.trans_id, loan='LOAN-000102')}"
    assert dial(f"{PIN}*4*2*1*1") == review

    shown = review_alerts(telegram)
    assert set(shown) == {ADMIN_TG, OFFICER_TG}
    for _, text_and_markup, buttons in shown.values():
        text = text_and_markup["text"]
        assert text.startswith(f"Borrower asks for a review: {tx.trans_id}\nKES 1,000.00 paid ")
        assert "\nWanjiru Kamau asked from 2547*****678 on " in text
        assert "to move it to LOAN-000102; not done automatically: it is more than 48 hours old.\n" in text
        assert PHONE.removeprefix("+") not in text
        assert list(buttons) == ["Assign…", "Mark reviewed"]  # posted: moved or reviewed, not reprocessed

    # Asked again (another session): stored, but no second alert.
    assert dial(f"{PIN}*4*2*1*1", session="ATUid_session_2") == review
    assert tx.review_requests.count() == 2
    assert AlertMessage.objects.count() == 2
    for chat_id in (ADMIN_TG, OFFICER_TG):
        # The officer's chat also has the note about the payment's posting, without buttons.
        sent = telegram.sent("sendMessage", chat_id=chat_id)
        assert len([call for call in sent if call.params.get("reply_markup")]) == 1

    message_id, _, buttons = shown[OFFICER_TG]
    tap(post_update, OFFICER_TG, buttons["Mark reviewed"], OFFICER_TG, message_id)

    tx.refresh_from_db()
    assert tx.reviewed_by == officer and tx.status == "processed"
    assert answers(telegram)[-1].startswith("✅ Marked reviewed by otieno,")
    for chat_id, (shown_id, _, _) in shown.items():
        now = telegram.shown(chat_id, shown_id)
        assert "✅ Marked reviewed by otieno," in now["text"] and not now.get("reply_markup")
    assert PaymentAlert.objects.get().resolved_at is not None
    assert AuditEvent.objects.filter(action="mpesa.reviewed", actor_user=officer).count() == 1


def test_a_review_request_by_sms_on_a_payment_staff_had_reviewed_is_open_until_reviewed_again(
    mpesa_config, admin, officer, borrower, telegram, post_form, post_update
):
    from core.actors import Actor
    from payments.services import transaction_mark_reviewed

    tx = pay(mpesa_config)
    transaction_mark_reviewed(trans_id=tx.trans_id, actor=Actor.staff(admin), note="checked")
    response = post_form(
        "/ussd/sms/inbound/", form_fixture("sms_inbound.txt", text="MOVE LOAN-000102", id="sms-move-1")
    )
    assert response.status_code == 200
    reply = IncomingSms.objects.get(provider_id="sms-move-1").reply
    assert reply.body == en.SMS_MOVE_REVIEW.format(code=tx.trans_id)

    shown = review_alerts(telegram)
    assert set(shown) == {ADMIN_TG, OFFICER_TG}
    for _, text_and_markup, buttons in shown.values():
        text = text_and_markup["text"]
        assert text.startswith(f"Borrower asks for a review: {tx.trans_id}")
        assert "to LOAN-000102; not done automatically: it was already moved or reviewed." in text
        assert "Resolved elsewhere" not in text  # the earlier review does not answer the borrower
        assert list(buttons) == ["Assign…", "Mark reviewed"]

    message_id, _, buttons = shown[ADMIN_TG]
    tap(post_update, ADMIN_TG, buttons["Mark reviewed"], ADMIN_TG, message_id)
    tx.refresh_from_db()
    assert tx.reviewed_by == admin
    assert answers(telegram)[-1].startswith("✅ Marked reviewed by amina,")
    for chat_id, (shown_id, _, _) in shown.items():
        now = telegram.shown(chat_id, shown_id)
        assert "✅ Marked reviewed by amina," in now["text"] and not now.get("reply_markup")
    assert AuditEvent.objects.filter(action="mpesa.reviewed", actor_user=admin).count() == 2


# --- what an alert shows --------------------------------------------------------------------------------
@pytest.fixture(name="confirm")
def confirm_fixture(client, django_capture_on_commit_callbacks):
    """POST a recorded Daraja confirmation to its paybill's URL, as Safaricom does; the payment is
    processed, and the outbox drained, on commit. Returns the stored payment."""
    from payments.services.callbacks import config_cache_clear

    def post(name: str, **overrides: str) -> MpesaTransaction:
        payload = daraja_payload(name, **overrides)
        config = MpesaConfigurationFactory(business_short_code=payload["BusinessShortCode"])
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/payments/c2b/{config.callback_token}/confirmation/",
                data=json.dumps(payload, default=str),
                content_type="application/json",
            )
        assert response.status_code == 200, response.content
        return MpesaTransaction.objects.get(trans_id=payload["TransID"])

    config_cache_clear()
    yield post
    config_cache_clear()


@pytest.mark.parametrize(
    ("fixture", "overrides", "head", "payer", "account", "tried"),
    [
        (
            "confirmation_plain_number_amount.json",
            {},
            "Unmatched payment: NLJ7RT61SV\nKES 10.00 paid 22 Nov 2019 06:38",
            f"John J. Doe, {mask_phone('254708374149')}",
            "Account: 'loan 123'",
            "nothing identified the payer: bill reference 'loan 123', MSISDN plain",
        ),
        (
            # The payer typed their own number as the account: masked there too, as on the staff pages.
            "confirmation_plain_number_amount.json",
            {"BillRefNumber": "0708374149"},
            "Unmatched payment: NLJ7RT61SV\nKES 10.00 paid 22 Nov 2019 06:38",
            "John J. Doe, 2547*****149",
            "Account: '2547*****149'",
            "nothing identified the payer: bill reference '2547*****149', MSISDN plain",
        ),
        (
            "confirmation_masked.json",
            {},
            "Unmatched payment: SAB7LQ2X9K\nKES 5.00 paid 05 Mar 2024 08:30",
            "NICHOLAS, 2547 ***** 126",  # as Safaricom masked it
            "Account: (empty)",
            "nothing identified the payer: bill reference '', MSISDN masked "
            "(a masked number alone never identifies anyone)",
        ),
    ],
)
def test_an_alert_shows_the_payment_with_the_payer_masked(
    admin, telegram, confirm, fixture, overrides, head, payer, account, tried
):
    tx = confirm(fixture, **overrides)
    assert tx.status == "unmatched"

    _, shown, buttons = alert_in(telegram, ADMIN_TG)
    text = shown["text"]
    # Title and M-Pesa code, amount and time (Nairobi), payer, account, what the matcher tried, link.
    assert text == "\n".join(
        [
            head,
            f"Payer: {payer}",
            account,
            "Status: Unmatched",
            "What the matcher tried:",
            f"- {tried}",
            f"http://127.0.0.1:8000/payments/transactions/{tx.trans_id}/",
        ]
    )
    assert list(buttons) == BUTTONS
    # No phone number in full, in any form (254708374149, +254708374149, 0708374149): no nine digits in a row.
    assert not re.search(r"\d{9}", text)
