"""/ussd/callback/ driven with Africa's Talking's form posts: every menu path in both languages,
PINs and the lock across sessions, retries, divergent text, phone formats, the secret, bad input."""

from decimal import Decimal as D
from types import ModuleType

import pytest
from django.utils import timezone

from core.models import AuditEvent, Borrower, Loan, OutboxMessage
from payments.models import MpesaTransaction
from tests.ussd.conftest import FIXTURES, PHONE, form_fixture, make_loan, pay
from ussd import views
from ussd.models import BorrowerPin, InboundRequest
from ussd.services.pins import pin_set
from ussd.texts import en, sw, texts_for

pytestmark = pytest.mark.django_db

PIN = "4829"


@pytest.fixture
def with_pin(borrower):
    pin_set(borrower=borrower, pin=PIN)
    return borrower


def outstanding(number: str) -> D:
    return Loan.objects.get(loan_number=number).outstanding


def speaking(borrower: Borrower, language: str) -> ModuleType:
    """Make ``language`` the borrower's and return its texts."""
    borrower.preferred_language = language
    borrower.save(update_fields=["preferred_language"])
    return texts_for(language)


def day(value) -> str:
    return value.strftime("%d/%m/%Y")


@pytest.mark.parametrize("language", ["en", "sw"])
def test_a_first_session_creates_the_pin_then_shows_the_menu(dial, borrower, loans, paybill, language):
    t = speaking(borrower, language)
    assert dial("") == f"CON {t.PIN_CREATE}"
    assert dial("48") == f"CON {t.PIN_NOT_FOUR_DIGITS}\n{t.PIN_CREATE}"
    assert dial("48*1234") == f"CON {t.PIN_TRIVIAL}\n{t.PIN_CREATE}"  # refused, with the hint
    assert dial("48*1234*4829") == f"CON {t.PIN_CONFIRM}"
    assert dial("48*1234*4829*4828") == f"CON {t.PIN_MISMATCH}\n{t.PIN_CREATE}"  # start again
    assert not BorrowerPin.objects.filter(borrower=borrower).exists()
    assert dial("48*1234*4829*4828*4829") == f"CON {t.PIN_CONFIRM}"
    assert dial("48*1234*4829*4828*4829*4829") == f"CON {t.PIN_SAVED}\n{t.MAIN}"
    record = BorrowerPin.objects.get(borrower=borrower)
    assert PIN not in record.pin_hash
    assert dial("", session="second") == f"CON {t.PIN_ENTER}"
    assert dial(PIN, session="second") == f"CON {t.MAIN}"


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
    assert dial(f"{PIN}*1") == (
        f"CON {t.LOANS_HEADER}\n"
        + t.LOAN_LINE.format(n=1, loan="LOAN-000101", outstanding="4,000.00", due=day(loans[0].due_date))
        + "\n"
        + t.LOAN_LINE.format(n=2, loan="LOAN-000102", outstanding="8,000.00", due=day(loans[1].due_date))
        + f"\n{t.BACK_HOME}"
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
    target = t.LOAN_LINE.format(n=1, loan="LOAN-000102", outstanding="8,000.00", due=day(loans[1].due_date))
    assert dial(f"{PIN}*4*2") == f"CON {t.MOVE_CHOOSE}\n{target}\n{t.BACK_HOME}"
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


@pytest.mark.parametrize("language", ["en", "sw"])
def test_a_move_that_may_not_be_automatic_tells_the_borrower_staff_will_review(
    dial, with_pin, loans, paybill, admin, language
):
    t = speaking(with_pin, language)
    tx = pay(paybill, hours_ago=50)  # past the 48 hours a borrower may move a payment in
    assert dial(f"{PIN}*4*2*1*1") == f"END {t.MOVE_REVIEW.format(code=tx.trans_id, loan='LOAN-000102')}"
    assert outstanding("LOAN-000101") == D("4000.00")
    assert MpesaTransaction.objects.get(pk=tx.pk).review_requests.count() == 1
    alerted = OutboxMessage.objects.filter(dedupe_key__startswith=f"review-request:{tx.trans_id}:")
    assert {message.user for message in alerted} == {admin, with_pin.loan_officer}  # staff are alerted


def test_language_choice_is_saved_for_the_next_session(dial, with_pin, loans, paybill):
    assert dial(f"{PIN}*5*2") == f"CON {sw.LANGUAGE_SAVED}\n{sw.MAIN}"
    with_pin.refresh_from_db()
    assert with_pin.preferred_language == "sw"
    assert dial("", session="next") == f"CON {sw.PIN_ENTER}"


@pytest.mark.parametrize("language", ["en", "sw"])
def test_change_pin(dial, with_pin, loans, paybill, language):
    t = speaking(with_pin, language)
    assert dial(f"{PIN}*6") == f"CON {t.PIN_CURRENT}"
    assert dial(f"{PIN}*6*{PIN}") == f"CON {t.PIN_NEW}"
    assert dial(f"{PIN}*6*{PIN}*4321") == f"CON {t.PIN_TRIVIAL}\n{t.PIN_NEW}"
    assert dial(f"{PIN}*6*{PIN}*4321*7351") == f"CON {t.PIN_CONFIRM}"
    assert dial(f"{PIN}*6*{PIN}*4321*7351*7351") == f"END {t.PIN_CHANGED}"
    assert dial(PIN, session="next") == f"CON {t.PIN_WRONG.format(left=2)}"  # the old one no longer
    assert dial("7351", session="last") == f"CON {t.MAIN}"


@pytest.mark.parametrize("language", ["en", "sw"])
def test_paging_back_and_home_through_many_loans(dial, with_pin, paybill, language):
    t = speaking(with_pin, language)
    loans = [make_loan(with_pin, f"LOAN-{200 + n:06d}", "1234567.89", due_in=n + 1) for n in range(8)]
    line = t.LOAN_LINE.format(n=1, loan="LOAN-000200", outstanding="1,234,567.89", due=day(loans[0].due_date))
    first = dial(f"{PIN}*1")
    assert first.startswith(f"CON {t.LOANS_HEADER}\n{line}\n") and first.endswith(f"{t.MORE}\n{t.BACK_HOME}")
    second = dial(f"{PIN}*1*98")
    assert second != first and "LOAN-000200" not in second
    assert dial(f"{PIN}*1*98*0") == first
    assert dial(f"{PIN}*1*98*00") == f"CON {t.MAIN}"
    assert dial(f"{PIN}*1*98*00*1*8").startswith(
        "CON "
        + t.LOAN_DETAIL.format(loan="LOAN-000207", outstanding="1,234,567.89", due=day(loans[7].due_date))
    )


@pytest.mark.parametrize("language", ["en", "sw"])
def test_three_loans_show_number_outstanding_and_due_date_over_two_pages(dial, with_pin, paybill, language):
    t = speaking(with_pin, language)
    loans = [
        make_loan(with_pin, "LOAN-000301", "9999999.99", due_in=3),
        make_loan(with_pin, "LOAN-000302", "250000", due_in=33),
        make_loan(with_pin, "LOAN-000303", "1500", due_in=63),
    ]
    lines = [
        t.LOAN_LINE.format(n=n, loan=loan.loan_number, outstanding=amount, due=day(loan.due_date))
        for n, (loan, amount) in enumerate(
            zip(loans, ["9,999,999.99", "250,000.00", "1,500.00"], strict=True), 1
        )
    ]
    assert lines[0] == f"1 LOAN-000301 KES 9,999,999.99 {'due' if language == 'en' else 'tarehe'} " + day(
        loans[0].due_date
    )
    first = f"CON {t.LOANS_HEADER}\n{lines[0]}\n{lines[1]}\n{t.MORE}\n{t.BACK_HOME}"
    assert dial(f"{PIN}*1") == first
    assert dial(f"{PIN}*1*98") == f"CON {t.LOANS_HEADER}\n{lines[2]}\n{t.BACK_HOME}"
    assert dial(f"{PIN}*1*98*0") == first
    assert dial(f"{PIN}*1*98*0*98*3").startswith(
        "CON " + t.LOAN_DETAIL.format(loan="LOAN-000303", outstanding="1,500.00", due=day(loans[2].due_date))
    )


@pytest.mark.parametrize("language", ["en", "sw"])
def test_three_invalid_choices_end_the_session(dial, with_pin, loans, paybill, language):
    t = speaking(with_pin, language)
    assert dial(f"{PIN}*9") == f"CON {t.INVALID}\n{t.MAIN}"
    assert dial(f"{PIN}*9*9") == f"CON {t.INVALID}\n{t.MAIN}"
    assert dial(f"{PIN}*9*9*9") == f"END {t.TOO_MANY_INVALID}"


@pytest.mark.parametrize("language", ["en", "sw"])
def test_three_wrong_pins_lock_ussd_across_sessions(dial, with_pin, loans, paybill, language):
    t = speaking(with_pin, language)
    assert dial("1111") == f"CON {t.PIN_WRONG.format(left=2)}"
    assert dial("1111", session="b") == f"CON {t.PIN_WRONG.format(left=1)}"  # a new session does not reset it
    locked = dial("1111", session="c")
    until = BorrowerPin.objects.get(borrower=with_pin).locked_until
    assert locked == "END " + t.LOCKED.format(
        time=timezone.localtime(until).strftime("%H:%M"), contact="0700 123 456"
    )
    assert dial("", session="d") == locked  # the right PIN is not even asked
    assert dial(PIN, session="e") == locked


@pytest.mark.parametrize("language", ["en", "sw"])
def test_how_to_pay_with_one_loan_names_it_and_sends_it_by_sms(dial, with_pin, paybill, language):
    t = speaking(with_pin, language)
    make_loan(with_pin, "LOAN-000101", "5000")
    assert (
        dial(f"{PIN}*3")
        == "CON "
        + t.HOW_TO_PAY.format(paybill="600984", account="LOAN-000101")
        + f"\n{t.HOW_TO_PAY_SMS}\n{t.BACK_HOME}"
    )
    assert dial(f"{PIN}*3*1") == f"END {t.PAY_SMS_SENT}"
    [sms] = OutboxMessage.objects.filter(dedupe_key__startswith="ussd-pay-details:")
    assert (sms.recipient, sms.body) == (
        PHONE,
        t.SMS_PAY_DETAILS.format(paybill="600984", loan="LOAN-000101", outstanding="5,000.00"),
    )


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
