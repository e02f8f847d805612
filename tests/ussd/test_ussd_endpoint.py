"""/ussd/callback/ driven with Africa's Talking's form posts: every menu path in both languages,
PINs and the lock across sessions, retries, divergent text, phone formats, the secret, bad input."""

from decimal import Decimal as D

import pytest

from core.models import AuditEvent, Loan, OutboxMessage
from payments.models import MpesaTransaction
from tests.ussd.conftest import FIXTURES, PHONE, form_fixture, make_loan, pay
from ussd import views
from ussd.models import BorrowerPin, InboundRequest
from ussd.services.pins import pin_set
from ussd.texts import en, sw

pytestmark = pytest.mark.django_db

PIN = "4829"


@pytest.fixture
def with_pin(borrower):
    pin_set(borrower=borrower, pin=PIN)
    return borrower


def outstanding(number: str) -> D:
    return Loan.objects.get(loan_number=number).outstanding


def test_a_first_session_creates_the_pin_then_shows_the_menu(dial, borrower, loans, paybill):
    assert dial("") == f"CON {en.PIN_CREATE}"
    assert dial("1234") == f"CON {en.PIN_TRIVIAL}\n{en.PIN_CREATE}"
    assert dial("1234*4829") == f"CON {en.PIN_CONFIRM}"
    assert dial("1234*4829*4829") == f"CON {en.PIN_SAVED}\n{en.MAIN}"
    record = BorrowerPin.objects.get(borrower=borrower)
    assert PIN not in record.pin_hash
    assert dial("", session="second") == f"CON {en.PIN_ENTER}"
    assert dial(PIN, session="second") == f"CON {en.MAIN}"


def test_a_kiswahili_borrower_is_answered_in_kiswahili(dial, with_pin, loans, paybill):
    with_pin.preferred_language = "sw"
    with_pin.save()
    assert dial("") == f"CON {sw.PIN_ENTER}"
    assert dial(PIN) == f"CON {sw.MAIN}"


@pytest.mark.parametrize("language", ["en", "sw"])
def test_my_loans_details_split_and_pay_details_by_sms(dial, with_pin, loans, paybill, language):
    with_pin.preferred_language = language
    with_pin.save()
    t = en if language == "en" else sw
    pay(paybill)
    assert dial(f"{PIN}*1").startswith(
        f"CON {t.LOANS_HEADER}\n1 LOAN-000101 KES 4,000.00\n2 LOAN-000102 KES 8,000.00"
    )
    details = dial(f"{PIN}*1*1")
    assert details.startswith(
        "CON "
        + t.LOAN_DETAIL.format(
            loan="LOAN-000101", outstanding="4,000.00", due=loans[0].due_date.strftime("%d/%m/%Y")
        )
    )
    assert "1,000.00" in details  # the last payment
    assert dial(f"{PIN}*1*1*98").startswith("CON LOAN-000101 ")
    assert dial(f"{PIN}*1*1*98*98").startswith(
        "CON " + t.LOAN_PAY.format(paybill="600984", loan="LOAN-000101")
    )
    assert dial(f"{PIN}*1*1*98*98*1") == f"END {t.PAY_SMS_SENT}"
    [sms] = OutboxMessage.objects.filter(dedupe_key__startswith="ussd-pay-details:")
    assert sms.recipient == PHONE
    assert sms.body == t.SMS_PAY_DETAILS.format(paybill="600984", loan="LOAN-000101", outstanding="4,000.00")


@pytest.mark.parametrize("language", ["en", "sw"])
def test_recent_payments_and_how_to_pay(dial, with_pin, loans, paybill, language):
    with_pin.preferred_language = language
    with_pin.save()
    t = en if language == "en" else sw
    tx = pay(paybill)
    day = tx.trans_time.astimezone().strftime("%d/%m")
    assert (
        dial(f"{PIN}*2")
        == f"CON {t.PAYMENTS_HEADER}\n{tx.trans_id} KES 1,000.00 {day} LOAN-000101\n{t.BACK_HOME}"
    )
    assert dial(f"{PIN}*2*0") == f"CON {t.MAIN}"
    assert (
        dial(f"{PIN}*2*0*3")
        == "CON " + t.HOW_TO_PAY.format(paybill="600984", account=t.HOW_TO_PAY_NO_LOAN) + f"\n{t.BACK_HOME}"
    )


@pytest.mark.parametrize("language", ["en", "sw"])
def test_confirming_the_last_payment_is_audited(dial, with_pin, loans, paybill, language):
    with_pin.preferred_language = language
    with_pin.save()
    t = en if language == "en" else sw
    tx = pay(paybill)
    assert dial(f"{PIN}*4").startswith(f"CON {t.LAST_PAYMENT.split(' ')[0]}")
    assert dial(f"{PIN}*4*1") == f"END {t.CONFIRMED}"
    event = AuditEvent.objects.get(action="mpesa.borrower_confirmed")
    assert (event.actor_label, event.data["trans_id"]) == (PHONE, tx.trans_id)


@pytest.mark.parametrize("language", ["en", "sw"])
def test_moving_the_last_payment_moves_the_money_once_even_when_the_request_is_repeated(
    dial, with_pin, loans, paybill, language
):
    with_pin.preferred_language = language
    with_pin.save()
    t = en if language == "en" else sw
    tx = pay(paybill)
    assert dial(f"{PIN}*4*2") == f"CON {t.MOVE_CHOOSE}\n1 LOAN-000102 KES 8,000.00\n{t.BACK_HOME}"
    assert dial(f"{PIN}*4*2*1").startswith(
        "CON " + t.MOVE_CONFIRM.format(amount="1,000.00", code=tx.trans_id, loan="LOAN-000102")
    )
    done = f"END {t.MOVED.format(code=tx.trans_id, loan='LOAN-000102')}"
    assert dial(f"{PIN}*4*2*1*1") == done
    assert dial(f"{PIN}*4*2*1*1") == done  # the telco's retry
    assert (outstanding("LOAN-000101"), outstanding("LOAN-000102")) == (D("5000.00"), D("7000.00"))
    assert (
        AuditEvent.objects.filter(action="mpesa.assigned", actor_type="borrower", actor_label=PHONE).count()
        == 1
    )
    assert OutboxMessage.objects.filter(dedupe_key__startswith="borrower-move:").count() == 1


def test_a_move_that_may_not_be_automatic_tells_the_borrower_staff_will_review(
    dial, with_pin, loans, paybill
):
    tx = pay(paybill, hours_ago=50)
    assert dial(f"{PIN}*4*2*1*1") == f"END {en.MOVE_REVIEW.format(code=tx.trans_id, loan='LOAN-000102')}"
    assert outstanding("LOAN-000101") == D("4000.00")
    assert MpesaTransaction.objects.get(pk=tx.pk).review_requests.count() == 1


def test_language_choice_is_saved_for_the_next_session(dial, with_pin, loans, paybill):
    assert dial(f"{PIN}*5*2") == f"CON {sw.LANGUAGE_SAVED}\n{sw.MAIN}"
    with_pin.refresh_from_db()
    assert with_pin.preferred_language == "sw"
    assert dial("", session="next") == f"CON {sw.PIN_ENTER}"


def test_change_pin(dial, with_pin, loans, paybill):
    assert dial(f"{PIN}*6") == f"CON {en.PIN_CURRENT}"
    assert dial(f"{PIN}*6*{PIN}") == f"CON {en.PIN_NEW}"
    assert dial(f"{PIN}*6*{PIN}*7351") == f"CON {en.PIN_CONFIRM}"
    assert dial(f"{PIN}*6*{PIN}*7351*7351") == f"END {en.PIN_CHANGED}"
    assert dial("7351", session="next") == f"CON {en.MAIN}"


def test_paging_back_and_home_through_many_loans(dial, with_pin, paybill):
    for n in range(8):
        make_loan(with_pin, f"LOAN-{200 + n:06d}", "1234567.89", due_in=n + 1)
    first = dial(f"{PIN}*1")
    assert first.startswith(f"CON {en.LOANS_HEADER}\n1 LOAN-000200") and first.endswith(
        f"{en.MORE}\n{en.BACK_HOME}"
    )
    second = dial(f"{PIN}*1*98")
    assert second != first and "LOAN-000200" not in second
    assert dial(f"{PIN}*1*98*0") == first
    assert dial(f"{PIN}*1*98*00") == f"CON {en.MAIN}"
    assert dial(f"{PIN}*1*98*00*1*8").startswith("CON LOAN-000207 owes KES 1,234,567.89")


def test_three_invalid_choices_end_the_session(dial, with_pin, loans, paybill):
    assert dial(f"{PIN}*9") == f"CON {en.INVALID}\n{en.MAIN}"
    assert dial(f"{PIN}*9*9") == f"CON {en.INVALID}\n{en.MAIN}"
    assert dial(f"{PIN}*9*9*9") == f"END {en.TOO_MANY_INVALID}"


def test_three_wrong_pins_lock_ussd_across_sessions(dial, with_pin, loans, paybill):
    assert dial("1111") == f"CON {en.PIN_WRONG.format(left=2)}"
    assert (
        dial("1111", session="b") == f"CON {en.PIN_WRONG.format(left=1)}"
    )  # a new session does not reset it
    locked = dial("1111", session="c")
    assert locked.startswith("END Too many wrong PINs. USSD is locked until ")
    assert dial("", session="d").startswith("END Too many wrong PINs.")  # the right PIN is not even asked
    assert dial(PIN, session="e").startswith("END Too many wrong PINs.")


def test_a_retry_answers_the_same_and_counts_a_wrong_pin_once(dial, with_pin, loans, paybill):
    first = dial("1111")
    assert dial("1111") == first
    assert BorrowerPin.objects.get(borrower=with_pin).failed_attempts == 1


def test_text_that_does_not_continue_the_session_is_replayed_from_the_start(dial, with_pin, loans, paybill):
    dial("1111")
    dial(f"1111*{PIN}")
    assert dial(f"1111*{PIN}*1").startswith(f"CON {en.LOANS_HEADER}")
    # The telco lost a step: the text jumps ahead from an older state.
    assert dial(f"1111*{PIN}*2").startswith(f"CON {en.PAYMENTS_NONE}")
    assert dial(f"1111*{PIN}*1*2").startswith("CON LOAN-000102 owes")
    # The wrong PIN at position 0 was counted once, and the right one at position 1 cleared it.
    assert BorrowerPin.objects.get(borrower=with_pin).failed_attempts == 0


def test_an_unknown_number_learns_how_to_reach_the_lender_and_nothing_else(dial, borrower, loans):
    answer = dial("", phone="+254799888777")
    assert answer == "END " + en.NOT_REGISTERED.format(
        contact="0700 123 456"
    ) + "\n" + sw.NOT_REGISTERED.format(contact="0700 123 456")
    assert "LOAN" not in dial("1", phone="+254799888777")


@pytest.mark.parametrize("phone", ["+254712345678", " 254712345678", "254712345678", "0712345678"])
def test_every_phone_form_finds_the_borrower(dial, with_pin, phone):
    assert dial("", phone=phone) == f"CON {en.PIN_ENTER}"


def test_a_plus_sent_unencoded_arrives_as_a_space_and_still_finds_the_borrower(post_form, with_pin, loans):
    response = post_form("/ussd/callback/", (FIXTURES / "ussd_request_unencoded_plus.txt").read_bytes())
    assert response.content.decode() == f"CON {en.PIN_ENTER}"
    assert "phoneNumber=+254712345678" in InboundRequest.objects.get().body  # kept as it came


def test_a_session_is_bound_to_its_phone_number(dial, with_pin, loans, paybill):
    from tests.factories import BorrowerFactory

    BorrowerFactory(phones=["+254733000111"])
    dial(PIN)
    assert dial(f"{PIN}*1", phone="+254733000111") == "END " + en.SESSION_ERROR + "\n" + sw.SESSION_ERROR
    assert dial(f"{PIN}*1").startswith(f"CON {en.LOANS_HEADER}")


def test_another_service_code_gets_a_generic_end(dial, with_pin):
    assert dial("", code="*999#") == "END " + en.WRONG_SERVICE + "\n" + sw.WRONG_SERVICE


def test_every_request_is_stored_once_as_it_came_but_for_the_pin(dial, with_pin, loans, paybill):
    dial("")
    dial(PIN)
    dial(PIN)  # the telco's retry
    dial(f"{PIN}*1")
    rows = list(InboundRequest.objects.filter(kind="ussd").order_by("id"))
    assert [row.outcome for row in rows] == ["handled"] * 4
    assert [row.body for row in rows] == [
        form_fixture("ussd_request.txt", sessionId="ATUid_session_1", phoneNumber=PHONE, text=text).decode()
        for text in ("", "xxxx", "xxxx", "xxxx*1")
    ]


@pytest.mark.parametrize("secret", [None, "", "wrong", "at-callback-secret-5Kq"])
def test_a_wrong_or_missing_secret_is_refused_and_not_processed(post_form, with_pin, secret):
    response = post_form("/ussd/callback/", form_fixture("ussd_request.txt"), secret=secret)
    assert response.status_code == 403
    assert not InboundRequest.objects.exists()


def test_a_malformed_request_is_stored_and_refused(post_form, with_pin):
    response = post_form("/ussd/callback/", b"sessionId=&phoneNumber=%2B254712345678&text=")
    assert (response.status_code, response.content) == (400, b"malformed request: missing sessionId")
    row = InboundRequest.objects.get()
    assert (row.kind, row.outcome, row.error) == ("ussd", "malformed", "missing sessionId")
    response = post_form("/ussd/callback/", b"\xff\xfe not a form")
    assert response.status_code == 400


def test_an_oversized_request_is_stored_without_its_body_and_refused(post_form, with_pin):
    response = post_form("/ussd/callback/", form_fixture("ussd_request.txt") + b"&pad=" + b"x" * 20000)
    assert response.status_code == 413
    row = InboundRequest.objects.get()
    assert (row.outcome, row.body) == ("malformed", "")
    assert "over the 16 KB limit" in row.error


def test_an_internal_error_answers_an_end_apology_never_a_500(
    post_form, with_pin, monkeypatch, caplog, admin
):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(views, "ussd_answer", broken)
    response = post_form("/ussd/callback/", form_fixture("ussd_request.txt"))
    assert response.status_code == 200
    assert response.content.decode() == "END " + en.SESSION_ERROR + "\n" + sw.SESSION_ERROR
    row = InboundRequest.objects.get()
    assert (row.outcome, row.error) == ("error", "RuntimeError: database went away")
    assert "USSD request" in caplog.text
    post_form("/ussd/callback/", form_fixture("ussd_request.txt"))
    [alert] = OutboxMessage.objects.filter(dedupe_key__startswith="ussd-error:")  # once, not per request
    assert alert.context == {"kind": "ops", "alert": "ussd_error"} and alert.user == admin


@pytest.fixture
def admin(db):
    from tests.factories import AdminFactory

    return AdminFactory(phone="+254700999888")


def test_a_request_that_cannot_even_be_stored_still_gets_an_end(post_form, with_pin, monkeypatch):
    from django.db import OperationalError

    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(views, "inbound_store", down)
    response = post_form("/ussd/callback/", form_fixture("ussd_request.txt"))
    assert (response.status_code, response.content.decode()) == (
        200,
        "END " + en.SESSION_ERROR + "\n" + sw.SESSION_ERROR,
    )


def test_get_is_not_allowed(client):
    assert client.get("/ussd/callback/").status_code == 405


def test_without_a_configured_secret_development_accepts_every_request(post_form, with_pin, settings):
    settings.AFRICASTALKING_CALLBACK_SECRET = ""
    response = post_form("/ussd/callback/", form_fixture("ussd_request.txt"), secret=None)
    assert (response.status_code, response.content.decode()) == (200, f"CON {en.PIN_ENTER}")


def test_without_service_codes_every_code_is_answered(dial, with_pin, settings):
    settings.USSD_SERVICE_CODES = []
    assert dial("", code="*999#") == f"CON {en.PIN_ENTER}"
