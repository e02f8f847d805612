"""The USSD menu as a pure state machine, with a fake port: every screen in both languages fits 160
GSM-7 characters with the longest realistic values; navigation, paging and invalid input."""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal as D

import pytest

from ussd import menu
from ussd.clients.sms import is_gsm7
from ussd.menu import LoanView, MoveAnswer, PaymentView
from ussd.services.pins import PinCheck
from ussd.services.sessions import _bilingual, _final
from ussd.texts import en, sw

LONGEST_AMOUNT = D("9999999.99")  # 9,999,999.99
LONGEST_PAYMENT = D("250000.00")  # M-Pesa's largest single payment
LONGEST_LOAN = "LOAN-000123"
LONGEST_CODE = "SLK4H7RT2P"
LONG_DAY = datetime.date(2026, 12, 31)


def long_loan(n: int) -> LoanView:
    return LoanView(
        loan_number=f"LOAN-{100000 + n:06d}",
        outstanding=LONGEST_AMOUNT,
        penalties=D("999999.99"),
        fees=D("999999.99"),
        interest=D("999999.99"),
        principal=LONGEST_AMOUNT,
        due_date=LONG_DAY,
        last_paid_amount=LONGEST_PAYMENT,
        last_paid_on=LONG_DAY,
    )


def long_payment(n: int, *, matched: int = 2) -> PaymentView:
    return PaymentView(
        trans_id=f"SLK4H7RT{n:02d}",
        amount=LONGEST_PAYMENT,
        paid_on=LONG_DAY,
        loan_numbers=tuple(f"LOAN-{100000 + i:06d}" for i in range(matched)),
    )


@dataclass
class FakePort:
    language: str = "en"
    paybill: str = "4123456"
    contact: str = "0700 123 456"
    pin: str | None = "4829"
    loan_list: list[LoanView] = field(default_factory=lambda: [long_loan(n) for n in range(5)])
    payment_list: list[PaymentView] = field(default_factory=lambda: [long_payment(n) for n in range(5)])
    wrong: int = 0
    calls: list[tuple] = field(default_factory=list)
    move_result: str = "moved"

    def has_pin(self) -> bool:
        return self.pin is not None

    def verify_pin(self, pin: str) -> PinCheck:
        self.calls.append(("verify_pin",))
        if pin == self.pin:
            return PinCheck(ok=True)
        self.wrong += 1
        if self.wrong >= 3:
            return PinCheck(
                ok=False, locked_until=datetime.datetime(2026, 12, 4, 20, 30, tzinfo=datetime.UTC)
            )
        return PinCheck(ok=False, attempts_left=3 - self.wrong)

    def set_pin(self, pin: str) -> None:
        self.calls.append(("set_pin",))
        self.pin = pin

    def digest(self, pin: str) -> str:
        return f"digest-{pin}"

    def loans(self) -> list[LoanView]:
        return self.loan_list

    def payments(self) -> list[PaymentView]:
        return self.payment_list

    def confirm_payment(self, trans_id: str) -> None:
        self.calls.append(("confirm", trans_id))

    def move_payment(self, trans_id: str, loan_number: str) -> MoveAnswer:
        self.calls.append(("move", trans_id, loan_number))
        return MoveAnswer(result=self.move_result, trans_id=trans_id, loan_number=loan_number)

    def send_pay_details(self, loan_number: str) -> None:
        self.calls.append(("sms", loan_number))

    def set_language(self, language: str) -> None:
        self.calls.append(("language", language))
        self.language = language


def walk(port: FakePort, *inputs: str) -> tuple[menu.Reply, dict]:
    reply, state = menu.start(port)
    for value in inputs:
        assert not reply.end, f"ended before {value!r}: {reply.text}"
        reply, state = menu.step(state, value, port)
    return reply, state


def assert_fits(text: str) -> None:
    assert len(text) <= menu.SCREEN_LIMIT, f"{len(text)} characters:\n{text}"
    assert is_gsm7(text), text


SCREENS = sorted(set(menu._HANDLERS))


@pytest.mark.parametrize("language", ["en", "sw"])
@pytest.mark.parametrize("screen", SCREENS)
def test_every_page_of_every_screen_fits_with_the_longest_values_and_the_hint(language, screen):
    port = FakePort(language=language)
    state = {
        "screen": screen,
        "lang": language,
        "page": 0,
        "invalid": 0,
        "loan": "LOAN-100000",
        "trans_id": LONGEST_CODE,
        "move_to": "LOAN-100004",
    }
    pages = menu._screens(state, port)
    for page in range(len(pages)):
        state["page"] = page
        for hint in ("", en.INVALID if language == "en" else sw.INVALID):
            assert_fits(menu._render(state, port, hint=hint).text)
    for hint in ("PIN_NOT_FOUR_DIGITS", "PIN_TRIVIAL", "PIN_MISMATCH", "PIN_SAVED", "LANGUAGE_SAVED"):
        texts = en if language == "en" else sw
        if screen in ("pin_create", "pin_new", "main"):
            assert_fits(menu._render(state | {"page": 0}, port, hint=getattr(texts, hint)).text)


@pytest.mark.parametrize("language", ["en", "sw"])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
@pytest.mark.parametrize("screen", ["loans", "move_list"])
def test_every_loan_line_shows_number_outstanding_and_due_date_whole_on_a_page_that_fits(
    language, count, screen
):
    texts = en if language == "en" else sw
    port = FakePort(language=language, loan_list=[long_loan(n) for n in range(count)])
    state = {"screen": screen, "lang": language, "page": 0, "invalid": 0}
    # The move list leaves out the loan the last payment went to (LOAN-100000).
    shown = port.loan_list if screen == "loans" else port.loan_list[1:]
    expected = [
        texts.LOAN_LINE.format(n=n, loan=loan.loan_number, outstanding="9,999,999.99", due="31/12/2026")
        for n, loan in enumerate(shown, 1)
    ]
    pages = menu._screens(state, port)
    lines = []
    for page, text in enumerate(pages):
        state["page"] = page
        assert_fits(menu._render(state, port, hint=texts.INVALID).text)
        footer = texts.BACK_HOME if page == len(pages) - 1 else f"{texts.MORE}\n{texts.BACK_HOME}"
        assert text.endswith("\n" + footer)
        lines += [line for line in text.splitlines() if "LOAN-" in line]
    assert lines == expected  # every loan once, in order, none cut
    assert all(
        line.split()[1:4] == [loan.loan_number, "KES", "9,999,999.99"] and line.endswith(" 31/12/2026")
        for line, loan in zip(lines, shown, strict=True)
    )
    if len(expected) >= 3:
        assert len(pages) > 1  # three loans with the longest values page with 98


@pytest.mark.parametrize("texts", [en, sw])
def test_every_ending_fits(texts):
    values = {
        "code": LONGEST_CODE,
        "loan": "LOAN-000123",
        "time": "23:59",
        "contact": "0700 123 456",
        "left": 2,
    }
    for name in (
        "LOCKED",
        "TOO_MANY_INVALID",
        "PIN_CHANGED",
        "PAY_SMS_SENT",
        "CONFIRMED",
        "MOVED",
        "MOVE_ALREADY",
        "MOVE_REVIEW",
        "MOVE_NO_PAYMENT",
        "MOVE_NOT_YOUR_LOAN",
        "PIN_WRONG",
    ):
        assert_fits(getattr(texts, name).format(**values))


@pytest.mark.parametrize("name", ["NOT_REGISTERED", "WRONG_SERVICE", "SESSION_ERROR"])
def test_the_bilingual_endings_fit(name):
    rendered = _final(menu.Reply(_bilingual(name, contact="0700 123 456"), end=True))
    assert rendered.startswith("END ")
    assert_fits(rendered.removeprefix("END "))
    assert rendered == "END " + _bilingual(name, contact="0700 123 456")  # nothing was cut


@pytest.mark.parametrize("t", [en, sw], ids=["en", "sw"])
def test_a_first_session_creates_a_pin_entered_twice(t):
    language = "en" if t is en else "sw"
    port = FakePort(pin=None, language=language)
    reply, _ = menu.start(port)
    assert reply.text == t.PIN_CREATE
    reply, _ = walk(port, "1234")
    assert reply.text == f"{t.PIN_TRIVIAL}\n{t.PIN_CREATE}"
    reply, _ = walk(FakePort(pin=None, language=language), "48")
    assert reply.text == f"{t.PIN_NOT_FOUR_DIGITS}\n{t.PIN_CREATE}"
    reply, _ = walk(FakePort(pin=None, language=language), "4829", "4828")
    assert reply.text == f"{t.PIN_MISMATCH}\n{t.PIN_CREATE}"
    port = FakePort(pin=None, language=language)
    reply, state = walk(port, "4829", "4829")
    assert reply.text == f"{t.PIN_SAVED}\n{t.MAIN}"
    assert (port.pin, state["screen"], state.get("pin")) == ("4829", "main", None)


@pytest.mark.parametrize("t", [en, sw], ids=["en", "sw"])
def test_wrong_pins_count_down_then_lock(t):
    port = FakePort(language="en" if t is en else "sw")
    reply, _ = walk(port, "1111")
    assert reply.text == t.PIN_WRONG.format(left=2)
    reply, _ = walk(port, "1111")
    assert reply.text == t.PIN_WRONG.format(left=1)
    reply, _ = walk(port, "1111")
    assert reply.end and reply.text == t.LOCKED.format(time="23:30", contact="0700 123 456")


def test_pin_screens_take_0_and_00_as_digits_not_navigation():
    reply, state = walk(FakePort(pin="0000"), "00")
    assert state["screen"] == "pin"  # a wrong PIN, not "home"
    assert reply.text == en.PIN_WRONG.format(left=2)


def test_one_loan_shows_its_balance_two_inputs_after_the_pin():
    port = FakePort(loan_list=[long_loan(0)])
    reply, state = walk(port, "4829", "1")
    assert state["screen"] == "loan"
    assert reply.text.startswith("LOAN-100000 owes KES 9,999,999.99\nDue 31/12/2026")


@pytest.mark.parametrize("t", [en, sw], ids=["en", "sw"])
def test_loans_page_with_98_and_go_back_with_0_and_home_with_00(t):
    port = FakePort(language="en" if t is en else "sw")
    reply, state = walk(port, "4829", "1")
    first = reply.text
    assert first.startswith(f"{t.LOANS_HEADER}\n1 LOAN-100000") and first.endswith(f"{t.MORE}\n{t.BACK_HOME}")
    reply, state = menu.step(state, "98", port)
    assert state["page"] == 1 and reply.text != first
    reply, state = menu.step(state, "0", port)
    assert (state["page"], reply.text) == (0, first)
    reply, state = menu.step(state, "0", port)
    assert (state["screen"], reply.text) == ("main", t.MAIN)
    _, state = walk(port, "4829", "1", "98")
    reply, state = menu.step(state, "00", port)
    assert (state["screen"], reply.text) == ("main", t.MAIN)


def test_a_loan_number_chosen_on_page_two_opens_that_loan():
    port = FakePort()
    reply, state = walk(port, "4829", "1", "98")
    last_shown = [line for line in reply.text.splitlines() if line[:1].isdigit() and "LOAN" in line][-1]
    number = last_shown.split()[0]
    reply, state = menu.step(state, number, port)
    assert state["loan"] == port.loan_list[int(number) - 1].loan_number


def test_loan_details_then_pay_details_by_sms():
    port = FakePort(language="sw")
    reply, state = walk(port, "4829", "1", "2", "98")
    assert reply.text.startswith("LOAN-100001 deni:\nFaini 999,999.99\nAda 999,999.99")
    reply, state = menu.step(state, "1", port)
    assert reply.text.startswith(sw.INVALID)  # nothing to send from the split
    reply, state = menu.step(state, "98", port)
    assert reply.text.startswith("Lipa kwa M-Pesa: Paybill 4123456, Akaunti LOAN-100001")
    reply, state = menu.step(state, "1", port)
    assert reply.end and reply.text == sw.PAY_SMS_SENT
    assert port.calls[-1] == ("sms", "LOAN-100001")


def test_recent_payments_show_where_each_went_or_that_it_is_not_matched():
    port = FakePort(payment_list=[long_payment(1, matched=0), long_payment(2, matched=1)])
    reply, _ = walk(port, "4829", "2")
    assert reply.text == (
        "Recent payments:\nSLK4H7RT01 KES 250,000.00 31/12 not matched yet: we are on it\n"
        "SLK4H7RT02 KES 250,000.00 31/12 LOAN-100000\n0 Back 00 Home"
    )


@pytest.mark.parametrize("t", [en, sw], ids=["en", "sw"])
def test_how_to_pay_with_one_loan_names_it_and_sends_it_by_sms(t):
    port = FakePort(loan_list=[long_loan(0)], language="en" if t is en else "sw")
    reply, state = walk(port, "4829", "3")
    assert (
        reply.text
        == t.HOW_TO_PAY.format(paybill="4123456", account="LOAN-100000")
        + "\n"
        + t.HOW_TO_PAY_SMS
        + "\n"
        + t.BACK_HOME
    )
    reply, _ = menu.step(state, "1", port)
    assert (reply.end, reply.text, port.calls[-1]) == (True, t.PAY_SMS_SENT, ("sms", "LOAN-100000"))


def test_confirm_the_last_payment():
    port = FakePort()
    reply, state = walk(port, "4829", "4")
    assert reply.text.startswith("Last payment SLK4H7RT00 KES 250,000.00 on 31/12 went to LOAN-100000 +1.")
    reply, _ = menu.step(state, "1", port)
    assert (reply.end, reply.text, port.calls[-1]) == (True, en.CONFIRMED, ("confirm", "SLK4H7RT00"))


@pytest.mark.parametrize("t", [en, sw], ids=["en", "sw"])
@pytest.mark.parametrize(
    ("result", "expected"), [("moved", "MOVED"), ("review", "MOVE_REVIEW"), ("already_there", "MOVE_ALREADY")]
)
def test_move_the_last_payment_to_another_loan(result, expected, t):
    port = FakePort(move_result=result, language="en" if t is en else "sw")
    reply, state = walk(port, "4829", "4", "2")
    assert reply.text.startswith(f"{t.MOVE_CHOOSE}\n1 LOAN-100001")  # not the loan it is on
    reply, state = menu.step(state, "1", port)
    assert reply.text.startswith(
        t.MOVE_CONFIRM.format(amount="250,000.00", code="SLK4H7RT00", loan="LOAN-100001")
    )
    reply, _ = menu.step(state, "1", port)
    assert reply.end and reply.text == getattr(t, expected).format(code="SLK4H7RT00", loan="LOAN-100001")
    assert port.calls[-1] == ("move", "SLK4H7RT00", "LOAN-100001")


def test_saying_no_to_a_move_goes_home_and_moves_nothing():
    port = FakePort()
    reply, state = walk(port, "4829", "4", "2", "1", "2")
    assert reply.text == en.MAIN
    assert state["screen"] == "main" and not any(call[0] == "move" for call in port.calls)


def test_an_unmatched_last_payment_cannot_be_confirmed_or_moved():
    port = FakePort(payment_list=[long_payment(1, matched=0)])
    reply, state = walk(port, "4829", "4")
    assert reply.text.startswith("Last payment SLK4H7RT01 KES 250,000.00 on 31/12 is not matched yet")
    reply, _ = menu.step(state, "1", port)
    assert reply.text.startswith(en.INVALID)


def test_language_changes_the_menu_at_once():
    port = FakePort()
    reply, state = walk(port, "4829", "5", "2")
    assert reply.text == f"{sw.LANGUAGE_SAVED}\n{sw.MAIN}"
    assert state["lang"] == "sw" and port.calls[-1] == ("language", "sw")


@pytest.mark.parametrize("t", [en, sw], ids=["en", "sw"])
def test_change_pin_asks_the_current_one_first(t):
    language = "en" if t is en else "sw"
    reply, _ = walk(FakePort(language=language), "4829", "6", "1111")
    assert reply.text == t.PIN_WRONG.format(left=2)
    reply, _ = walk(FakePort(language=language), "4829", "6", "4829", "7351", "7350")
    assert reply.text == f"{t.PIN_MISMATCH}\n{t.PIN_NEW}"
    port = FakePort(language=language)
    reply, _ = walk(port, "4829", "6", "4829", "7351", "7351")
    assert (reply.end, reply.text, port.pin) == (True, t.PIN_CHANGED, "7351")


@pytest.mark.parametrize("t", [en, sw], ids=["en", "sw"])
def test_three_invalid_choices_in_a_row_end_politely_and_a_valid_one_resets_the_count(t):
    port = FakePort(language="en" if t is en else "sw")
    reply, state = walk(port, "4829", "9")
    assert reply.text == f"{t.INVALID}\n{t.MAIN}"
    reply, state = menu.step(state, "7", port)
    assert not reply.end
    reply, _ = menu.step(state, "x", port)
    assert reply.end and reply.text == t.TOO_MANY_INVALID
    reply, _ = walk(port, "4829", "9", "9", "1", "x", "x")
    assert not reply.end


def test_more_on_the_last_page_is_an_invalid_choice():
    port = FakePort(loan_list=[long_loan(0), long_loan(1)])
    reply, _ = walk(port, "4829", "1", "98")
    assert reply.text.startswith(en.INVALID)
