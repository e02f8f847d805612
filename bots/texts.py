"""Every text the staff bot shows people (English). Messages fit Telegram's 4096 characters and
button-tap answers its 200, whatever the payment holds (``tests/bots/test_texts.py``)."""

import datetime
from decimal import Decimal

from django.utils import timezone

from core.money import format_kes

MESSAGE_LIMIT = 4096
ANSWER_LIMIT = 200
NOTE_LIMIT = 300

HELP = (
    "HAVEN GRAZURI staff bot\n\n"
    "/pending - unmatched and failed payments waiting for someone, with their buttons\n"
    "/find <M-Pesa code | phone | loan number> - look a payment, borrower or loan up\n"
    "/stats - today's payments\n"
    "/help - this list\n\n"
    "Alerts arrive here with buttons: Reprocess, Assign…, Mark reviewed. Money moves only after you "
    "tap Confirm."
)
STRANGER = (
    "Hello! This bot is for HAVEN GRAZURI staff only, so there is nothing here for you, sorry. "
    "If you are staff, ask an admin for a link code."
)
PRIVATE_ONLY = "Please write to me in a private chat."
LINK_FAILED = (
    "That link code is not valid or has expired. Ask an admin for a new one (codes last 15 minutes)."
)
UNKNOWN = "I did not understand that. Send /help for what I can do."
NOTHING_PENDING = "Nothing waiting: no unmatched or failed payment needs anyone."
FIND_USAGE = "Send /find followed by an M-Pesa code, a phone number or a loan number."
NOT_FOUND = "Nothing found that you may see."

# Answers to button taps (<= 200 characters).
TAP_STRANGER = "Only linked HAVEN GRAZURI staff can use these buttons."
TAP_INVALID = "This button is not valid."
TAP_EXPIRED = "This button has expired. Send /pending for fresh ones."
TAP_NOT_YOURS = "Only the person who started this assignment can go on with it."
TAP_OUTSIDE_PORTFOLIO = "This payment is not in your portfolio."
TAP_BUSY = "Someone is acting on this payment right now. Try again in a moment."
TAP_CANCELLED = "Cancelled. Nothing changed."

ALERT_TITLES = {
    "unmatched": "Unmatched payment",
    "failed": "Payment failed to post",
    "credit": "Overpayment held as credit",
    "held": "Payment held for staff",
    "review_request": "Borrower asks for a review",
}


kes = format_kes


def when(moment: datetime.datetime) -> str:
    return timezone.localtime(moment).strftime("%d %b %Y %H:%M")


def fit(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def linked(name: str) -> str:
    return f"Linked: you are {name}. Alerts now come here instead of by SMS. Send /help for commands."


def payment_text(
    *,
    title: str,
    trans_id: str,
    amount: Decimal,
    paid_at: datetime.datetime,
    payer: str,
    bill_reference: str,
    status: str,
    notes: list[str],
    url: str,
    outcome: str = "",
    request: str = "",
) -> str:
    """An alert, or a payment found with /find: what came in, what the borrower asked (``request``,
    for a review request), what the matcher tried, the staff page. Long notes are shortened, and the
    oldest dropped, so the whole fits one message."""
    head = [
        f"{title}: {trans_id}",
        f"{kes(amount)} paid {when(paid_at)}",
        f"Payer: {payer or 'unknown'}",
        f"Account: {bill_reference!r}" if bill_reference else "Account: (empty)",
        f"Status: {status}",
        *([fit(request, NOTE_LIMIT * 2)] if request else []),
    ]
    tail = [url] + ([f"\n{outcome}"] if outcome else [])
    lines = [note if len(note) <= NOTE_LIMIT else note[: NOTE_LIMIT - 1] + "…" for note in notes]
    while True:
        body = ["What the matcher tried:", *(f"- {line}" for line in lines)] if lines else []
        text = "\n".join(head + body + tail)
        if len(text) <= MESSAGE_LIMIT or not lines:
            return fit(text)
        lines = lines[1:]


def review_request_line(
    *, borrower: str, phone: str, loan_number: str, reason: str, at: datetime.datetime
) -> str:
    wanted = f"to {loan_number}" if loan_number else "elsewhere"
    return (
        f"{borrower} asked from {phone} on {when(at)} to move it {wanted}; not done automatically: {reason}."
    )


def outcome_line(*, what: str, by: str, at: datetime.datetime) -> str:
    return f"✅ {what} by {by}, {when(at)}."


def resolved_elsewhere(what: str) -> str:
    return f"☑️ Resolved elsewhere: {what}"


def assign_choose(*, trans_id: str, amount: Decimal) -> str:
    return f"Assign {trans_id} ({kes(amount)}) to which loan?"


def assign_ask(*, trans_id: str, amount: Decimal) -> str:
    return f"Reply to this message with the loan number for {trans_id} ({kes(amount)}), e.g. LOAN-000123."


def assign_confirm(
    *, trans_id: str, amount: Decimal, loan_number: str, borrower: str, outstanding: Decimal
) -> str:
    return (
        f"Assign {trans_id} ({kes(amount)}) to {loan_number} ({borrower}, outstanding {kes(outstanding)})?\n"
        "Nothing moves until you tap Confirm."
    )


def loan_button(*, loan_number: str, outstanding: Decimal) -> str:
    return f"{loan_number} · {kes(outstanding)}"


def stats_text(
    *,
    title: str,
    count: int,
    amount: Decimal,
    matched_rate: float | None,
    unmatched: int,
    failed: int,
    held: int = 0,
) -> str:
    rate = f"{matched_rate:.0%}" if matched_rate is not None else "n/a"
    still_open = f"{unmatched} unmatched, {failed} failed" + (f", {held} held" if held else "")
    return f"{title}\nPayments: {count}, {kes(amount)}\nMatched: {rate}\nStill open: {still_open}"


def reconciliation_text(*, recovered: dict[str, tuple[int, Decimal]], gaps: list[Decimal]) -> str:
    """The digest's reconciliation lines: payments that reached the books by a road other than their
    callback (``recovered``: source label -> count and amount), and balance gaps still unexplained."""
    roads = ", ".join(
        f"{count} by {label} ({kes(amount)})" for label, (count, amount) in recovered.items() if count
    )
    lines = [f"Recovered without a callback: {roads or 'none'}"]
    if gaps:
        lines.append(f"Balance gaps open: {len(gaps)}, {kes(sum(gaps, Decimal(0)))} never seen")
    return "\n".join(lines)


def loan_text(
    *, loan_number: str, borrower: str, status: str, outstanding: Decimal, due: datetime.date
) -> str:
    return f"{loan_number} ({borrower}): {status}, outstanding {kes(outstanding)}, due {due:%d %b %Y}"
