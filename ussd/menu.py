"""The USSD menu as a pure state machine: ``start(port)`` and ``step(state, value, port)`` return
``(Reply, next_state)``.

``state`` is a small JSON-able dict (screen, page, language, the loan chosen...). Everything the
menu reads or changes about the world goes through ``port`` (a ``MenuPort``): the HTTP adapter
(``ussd.services.sessions``) gives it one backed by the services, tests a fake. The menu never
touches HTTP, the cache or the database, so a session can be replayed from its first input.

Navigation: ``98`` next page, ``0`` back (previous page, then the screen before), ``00`` home, on
list and information screens only, never where a PIN is expected. An invalid choice re-shows
the screen with a short hint; the third in a row ends the session politely.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from types import ModuleType
from typing import Protocol

from django.utils import timezone

from core.money import format_money
from ussd.services.pins import PinCheck, pin_is_trivial, pin_is_well_formed
from ussd.texts import texts_for

SCREEN_LIMIT = 160  # characters after "CON " / "END "
MAX_INVALID = 3
MORE, BACK, HOME = "98", "0", "00"

State = dict


@dataclass(frozen=True, slots=True)
class LoanView:
    loan_number: str
    outstanding: Decimal
    penalties: Decimal
    fees: Decimal
    interest: Decimal
    principal: Decimal
    due_date: date
    last_paid_amount: Decimal | None = None
    last_paid_on: date | None = None


@dataclass(frozen=True, slots=True)
class PaymentView:
    trans_id: str
    amount: Decimal
    paid_on: date
    loan_numbers: tuple[str, ...]  # where it went; empty while it is not matched


@dataclass(frozen=True, slots=True)
class MoveAnswer:
    result: str  # payments.services.borrower_moves.MoveResult values
    trans_id: str
    loan_number: str


class MenuPort(Protocol):
    language: str
    contact: str

    @property
    def paybill(self) -> str: ...

    def has_pin(self) -> bool: ...
    def verify_pin(self, pin: str) -> PinCheck: ...
    def set_pin(self, pin: str) -> None: ...
    def digest(self, pin: str) -> str: ...
    def loans(self) -> list[LoanView]: ...
    def payments(self) -> list[PaymentView]: ...
    def confirm_payment(self, trans_id: str) -> None: ...
    def move_payment(self, trans_id: str, loan_number: str) -> MoveAnswer: ...
    def send_pay_details(self, loan_number: str) -> None: ...
    def set_language(self, language: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    end: bool = False

    def render(self) -> str:
        return ("END " if self.end else "CON ") + self.text


# Screens where 0 / 00 / 98 navigate; everywhere else they are ordinary input (a PIN may be 0000).
_NAVIGABLE = {"loans", "loan", "payments", "howto", "last", "move_list", "move_confirm", "language"}
_PIN_SCREENS = {"pin", "pin_create", "pin_confirm", "pin_current", "pin_new", "pin_new_confirm"}
_PARENT = {
    "loans": "main",
    "payments": "main",
    "howto": "main",
    "last": "main",
    "language": "main",
    "move_list": "last",
    "move_confirm": "move_list",
}


def _money(amount: Decimal) -> str:
    return format_money(amount)


def _day(value: date) -> str:
    return value.strftime("%d/%m/%Y")


def _short_day(value: date) -> str:
    return value.strftime("%d/%m")


def start(port: MenuPort) -> tuple[Reply, State]:
    """The first screen of a session: create a PIN, or enter it."""
    state: State = {"lang": port.language, "page": 0, "invalid": 0}
    state["screen"] = "pin" if port.has_pin() else "pin_create"
    return _render(state, port), state


def step(state: State, value: str, port: MenuPort) -> tuple[Reply, State]:
    """Answer ``value`` typed on the screen ``state`` describes."""
    state = dict(state)
    value = value.strip()
    screen = state["screen"]
    if screen in _NAVIGABLE and value in (MORE, BACK, HOME):
        return _navigate(state, value, port)
    handler = _HANDLERS[screen]
    result = handler(state, value, port)
    if result is None:
        return _invalid(state, port, texts_for(state["lang"]).INVALID)
    return result


def _invalid(state: State, port: MenuPort, hint: str) -> tuple[Reply, State]:
    state["invalid"] = state.get("invalid", 0) + 1
    if state["invalid"] >= MAX_INVALID:
        return Reply(texts_for(state["lang"]).TOO_MANY_INVALID, end=True), state
    return _render(state, port, hint=hint), state


def _go(state: State, screen: str, port: MenuPort, **values: object) -> tuple[Reply, State]:
    state.update(screen=screen, page=0, invalid=0, **values)
    return _render(state, port), state


def _navigate(state: State, value: str, port: MenuPort) -> tuple[Reply, State]:
    if value == HOME:
        return _go(state, "main", port)
    if value == MORE:
        if state.get("page", 0) + 1 >= _page_count(state, port):
            return _invalid(state, port, texts_for(state["lang"]).INVALID)
        state["page"] = state.get("page", 0) + 1
        state["invalid"] = 0
        return _render(state, port), state
    if state.get("page", 0) > 0:
        state["page"] -= 1
        state["invalid"] = 0
        return _render(state, port), state
    parent = _PARENT.get(state["screen"])
    if state["screen"] == "loan":
        parent = "loans" if len(port.loans()) > 1 else "main"
    state["invalid"] = 0
    return _go(state, parent or "main", port)


# --- handlers: (state, value, port) -> (reply, state), or None for an invalid choice --------------


def _pin_create(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    t = texts_for(state["lang"])
    if not pin_is_well_formed(value):
        return _invalid(state, port, t.PIN_NOT_FOUR_DIGITS)
    if pin_is_trivial(value):
        return _invalid(state, port, t.PIN_TRIVIAL)
    nxt = "pin_confirm" if state["screen"] == "pin_create" else "pin_new_confirm"
    return _go(state, nxt, port, pin=port.digest(value))


def _pin_confirm(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    t = texts_for(state["lang"])
    first = "pin_create" if state["screen"] == "pin_confirm" else "pin_new"
    if port.digest(value) != state.get("pin"):
        state.update(screen=first, pin=None)
        return _invalid(state, port, t.PIN_MISMATCH)
    port.set_pin(value)
    state["pin"] = None
    if first == "pin_new":
        return Reply(t.PIN_CHANGED, end=True), state
    state.update(screen="main", page=0, invalid=0)
    return _render(state, port, hint=t.PIN_SAVED), state


def _pin_check(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    t = texts_for(state["lang"])
    check = port.verify_pin(value)
    if check.locked_until is not None:
        return locked_reply(
            language=state["lang"], locked_until=check.locked_until, contact=port.contact
        ), state
    if not check.ok:
        state["invalid"] = 0  # wrong PINs are counted by the lockout, not as invalid choices
        return Reply(t.PIN_WRONG.format(left=check.attempts_left)), state
    if state["screen"] == "pin_current":
        return _go(state, "pin_new", port)
    return _go(state, "main", port)


_MAIN_CHOICES = {
    "1": "loans",
    "2": "payments",
    "3": "howto",
    "4": "last",
    "5": "language",
    "6": "pin_current",
}


def _main(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    screen = _MAIN_CHOICES.get(value)
    if screen is None:
        return None
    if screen == "loans":
        loans = port.loans()
        if len(loans) == 1:  # one loan: its balance at once
            return _go(state, "loan", port, loan=loans[0].loan_number)
    return _go(state, screen, port)


def _choose(value: str, count: int) -> int | None:
    if value.isdigit() and 1 <= int(value) <= count:
        return int(value) - 1
    return None


def _loans(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    loans = port.loans()
    index = _choose(value, len(loans))
    if index is None:
        return None
    return _go(state, "loan", port, loan=loans[index].loan_number)


def _loan(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    if state.get("page", 0) != _page_count(state, port) - 1 or value != "1":
        return None
    port.send_pay_details(state["loan"])
    return Reply(texts_for(state["lang"]).PAY_SMS_SENT, end=True), state


def _nothing(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    return None


def _howto(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    loans = port.loans()
    if value != "1" or len(loans) != 1:
        return None
    port.send_pay_details(loans[0].loan_number)
    return Reply(texts_for(state["lang"]).PAY_SMS_SENT, end=True), state


def _latest(port: MenuPort) -> PaymentView | None:
    payments = port.payments()
    return payments[0] if payments else None


def _last(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    t = texts_for(state["lang"])
    latest = _latest(port)
    if latest is None or not latest.loan_numbers or value not in ("1", "2"):
        return None
    if value == "1":
        port.confirm_payment(latest.trans_id)
        return Reply(t.CONFIRMED, end=True), state
    return _go(state, "move_list", port, trans_id=latest.trans_id)


def _move_targets(state: State, port: MenuPort) -> list[LoanView]:
    latest = _latest(port)
    current = latest.loan_numbers[0] if latest and latest.loan_numbers else None
    return [loan for loan in port.loans() if loan.loan_number != current]


def _move_list(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    targets = _move_targets(state, port)
    index = _choose(value, len(targets))
    if index is None:
        return None
    return _go(state, "move_confirm", port, move_to=targets[index].loan_number)


def _move_confirm(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    t = texts_for(state["lang"])
    if value == "2":
        return _go(state, "main", port)
    if value != "1":
        return None
    answer = port.move_payment(state["trans_id"], state["move_to"])
    words = {
        "moved": t.MOVED,
        "already_there": t.MOVE_ALREADY,
        "review": t.MOVE_REVIEW,
        "no_payment": t.MOVE_NO_PAYMENT,
        "not_your_loan": t.MOVE_NOT_YOUR_LOAN,
    }[answer.result]
    return Reply(words.format(code=answer.trans_id, loan=answer.loan_number), end=True), state


def _language(state: State, value: str, port: MenuPort) -> tuple[Reply, State] | None:
    language = {"1": "en", "2": "sw"}.get(value)
    if language is None:
        return None
    port.set_language(language)
    state.update(lang=language, screen="main", page=0, invalid=0)
    return _render(state, port, hint=texts_for(language).LANGUAGE_SAVED), state


_HANDLERS = {
    "pin_create": _pin_create,
    "pin_new": _pin_create,
    "pin_confirm": _pin_confirm,
    "pin_new_confirm": _pin_confirm,
    "pin": _pin_check,
    "pin_current": _pin_check,
    "main": _main,
    "loans": _loans,
    "loan": _loan,
    "payments": _nothing,
    "howto": _howto,
    "last": _last,
    "move_list": _move_list,
    "move_confirm": _move_confirm,
    "language": _language,
}


# --- rendering ------------------------------------------------------------------------------------


def _pages(header: str, lines: list[str], more: str, last: str, budget: int) -> list[str]:
    """Split ``lines`` into screens of at most ``budget`` characters: header, lines, footer (``more``
    on every screen but the last). Deterministic, so page N is the same on every request."""
    pages: list[str] = []
    rest = list(lines)
    while True:
        if len("\n".join([header, *rest, last])) <= budget:
            pages.append("\n".join([header, *rest, last]))
            return pages
        taken: list[str] = []
        while rest and len("\n".join([header, *taken, rest[0], more])) <= budget:
            taken.append(rest.pop(0))
        if not taken:  # one line too long for any screen: cut it rather than loop
            taken.append(rest.pop(0)[: max(0, budget - len(header) - len(more) - 2)])
        pages.append("\n".join([header, *taken, more]))


def _list_budget(state: State) -> int:
    # Room for the invalid-choice hint, so a page re-shown with it still fits.
    return SCREEN_LIMIT - len(texts_for(state["lang"]).INVALID) - 1


def _screens(state: State, port: MenuPort) -> list[str]:
    """Every page of the current screen (most screens have one)."""
    t = texts_for(state["lang"])
    screen = state["screen"]
    fixed = {
        "pin": t.PIN_ENTER,
        "pin_create": t.PIN_CREATE,
        "pin_confirm": t.PIN_CONFIRM,
        "pin_current": t.PIN_CURRENT,
        "pin_new": t.PIN_NEW,
        "pin_new_confirm": t.PIN_CONFIRM,
        "main": t.MAIN,
        "language": t.LANGUAGE + "\n" + t.BACK_HOME,
    }
    if screen in fixed:
        return [fixed[screen]]
    if screen not in _SCREEN_PAGES:
        raise KeyError(f"unknown USSD screen {screen!r}")
    return _SCREEN_PAGES[screen](state, port, t)


# Footers: an information screen ends with "back / home"; a page with more after it also offers them.
def _more(t: ModuleType) -> str:
    return f"{t.MORE}\n{t.BACK_HOME}"


def _one_page(text: str, t: ModuleType) -> list[str]:
    """A screen of one page: ``text`` and the back / home footer."""
    return [f"{text}\n{t.BACK_HOME}"]


def _loan_list_pages(state: State, port: MenuPort, t: ModuleType) -> list[str]:
    # The borrower's loans to look at ("loans"), or the other ones to move the last payment to.
    looking = state["screen"] == "loans"
    loans = port.loans() if looking else _move_targets(state, port)
    if not loans:
        return _one_page(t.LOANS_NONE if looking else t.MOVE_NO_OTHER, t)
    lines = [
        t.LOAN_LINE.format(
            n=n, loan=loan.loan_number, outstanding=_money(loan.outstanding), due=_day(loan.due_date)
        )
        for n, loan in enumerate(loans, 1)
    ]
    header = t.LOANS_HEADER if looking else t.MOVE_CHOOSE
    return _pages(header, lines, _more(t), t.BACK_HOME, _list_budget(state))


def _loan_pages(state: State, port: MenuPort, t: ModuleType) -> list[str]:
    loan = next((loan for loan in port.loans() if loan.loan_number == state.get("loan")), None)
    if loan is None:
        return _one_page(t.LOANS_NONE, t)
    detail = t.LOAN_DETAIL.format(
        loan=loan.loan_number, outstanding=_money(loan.outstanding), due=_day(loan.due_date)
    )
    split = t.LOAN_SPLIT.format(
        loan=loan.loan_number,
        penalties=_money(loan.penalties),
        fees=_money(loan.fees),
        interest=_money(loan.interest),
        principal=_money(loan.principal),
    )
    last = (
        t.LOAN_LAST_PAID.format(amount=_money(loan.last_paid_amount), date=_short_day(loan.last_paid_on))
        if loan.last_paid_amount is not None and loan.last_paid_on is not None
        else t.LOAN_NEVER_PAID
    )
    pay = t.LOAN_PAY.format(paybill=port.paybill, loan=loan.loan_number)
    # Balance and due date first (a borrower with one loan sees them two inputs after the PIN),
    # then the split, then how to pay.
    return [f"{detail}\n{last}\n{_more(t)}", f"{split}\n{_more(t)}", *_one_page(pay, t)]


def _payments_pages(state: State, port: MenuPort, t: ModuleType) -> list[str]:
    payments = port.payments()
    if not payments:
        return _one_page(t.PAYMENTS_NONE, t)
    lines = [
        t.PAYMENT_LINE.format(
            code=payment.trans_id,
            amount=_money(payment.amount),
            date=_short_day(payment.paid_on),
            target=_target(payment, t.NOT_MATCHED),
        )
        for payment in payments
    ]
    return _pages(t.PAYMENTS_HEADER, lines, _more(t), t.BACK_HOME, _list_budget(state))


def _how_to_pay_pages(state: State, port: MenuPort, t: ModuleType) -> list[str]:
    loans = port.loans()
    if len(loans) == 1:  # the details of the one loan can go by SMS
        text = (
            t.HOW_TO_PAY.format(paybill=port.paybill, account=loans[0].loan_number) + "\n" + t.HOW_TO_PAY_SMS
        )
    else:
        text = t.HOW_TO_PAY.format(paybill=port.paybill, account=t.HOW_TO_PAY_NO_LOAN)
    return _one_page(text, t)


def _last_payment_pages(state: State, port: MenuPort, t: ModuleType) -> list[str]:
    latest = _latest(port)
    if latest is None:
        return _one_page(t.PAYMENTS_NONE, t)
    values = {"code": latest.trans_id, "amount": _money(latest.amount), "date": _short_day(latest.paid_on)}
    if not latest.loan_numbers:
        return _one_page(t.LAST_PAYMENT_UNMATCHED.format(**values), t)
    return _one_page(t.LAST_PAYMENT.format(target=_target(latest, ""), **values), t)


def _move_confirm_pages(state: State, port: MenuPort, t: ModuleType) -> list[str]:
    latest = _latest(port)
    amount = _money(latest.amount) if latest else ""
    text = t.MOVE_CONFIRM.format(amount=amount, code=state.get("trans_id", ""), loan=state.get("move_to", ""))
    return _one_page(text, t)


# The screens whose pages depend on the borrower's data, by name; the others are one fixed text.
_SCREEN_PAGES: dict[str, Callable[[State, MenuPort, ModuleType], list[str]]] = {
    "loans": _loan_list_pages,
    "move_list": _loan_list_pages,
    "loan": _loan_pages,
    "payments": _payments_pages,
    "howto": _how_to_pay_pages,
    "last": _last_payment_pages,
    "move_confirm": _move_confirm_pages,
}


def _target(payment: PaymentView, unmatched: str) -> str:
    if not payment.loan_numbers:
        return unmatched
    extra = f" +{len(payment.loan_numbers) - 1}" if len(payment.loan_numbers) > 1 else ""
    return payment.loan_numbers[0] + extra


def _page_count(state: State, port: MenuPort) -> int:
    return len(_screens(state, port))


def _render(state: State, port: MenuPort, *, hint: str = "") -> Reply:
    pages = _screens(state, port)
    page = min(state.get("page", 0), len(pages) - 1)
    text = pages[page]
    if hint:
        text = f"{hint}\n{text}"
    return Reply(text)


def screen_name(state: State) -> str:
    return state.get("screen", "")


def is_pin_screen(state: State) -> bool:
    return state.get("screen") in _PIN_SCREENS


def locked_reply(*, language: str, locked_until: datetime, contact: str) -> Reply:
    when = timezone.localtime(locked_until).strftime("%H:%M")
    return Reply(texts_for(language).LOCKED.format(time=when, contact=contact), end=True)
