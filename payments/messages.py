"""Texts the payments engine sends: borrower receipts (English and Kiswahili) and staff notes.

Receipts must fit one SMS segment: 160 GSM-7 characters. Each builder tries its full wording first
and falls back to shorter ones, so a long amount or loan number never spills into a second segment.
"""

from dataclasses import dataclass
from decimal import Decimal

from core.money import format_kes

SMS_LIMIT = 160
BRAND = "HAVEN GRAZURI"


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    loan_number: str
    outstanding_after: Decimal


def _fit(variants: list[str]) -> str:
    for text in variants:
        if len(text) <= SMS_LIMIT:
            return text
    return variants[-1][:SMS_LIMIT]


def receipt_text(
    *, language: str, amount: Decimal, trans_id: str, loans: list[ReceiptLine], credit: Decimal
) -> str:
    """The SMS a borrower gets when their payment is posted: amount, M-Pesa code, loan, new balance
    (the total left on every loan the payment touched), and how to reply when the loan is wrong.
    One segment, GSM-7 only."""
    first = loans[0] if loans else None
    more = f" +{len(loans) - 1}" if len(loans) > 1 else ""
    left = sum((line.outstanding_after for line in loans), Decimal("0"))
    if language == "sw":
        head = f"{BRAND}: Tumepokea {format_kes(amount)} ({trans_id})"
        target = f" kwa {first.loan_number}{more}." if first else "."
        paid = " Mkopo umelipwa kikamilifu. Asante!" if len(loans) == 1 else " Mikopo imelipwa. Asante!"
        balance = (f" Salio {format_kes(left)}." if left > 0 else paid) if first else ""
        extra = f" Akiba {format_kes(credit)}." if credit > 0 else ""
        fix_long, fix_short = (
            f" Si mkopo sahihi? Jibu HAMISHA {trans_id} NAMBARI-YA-MKOPO",
            " Kosa? Jibu HAMISHA",
        )
    else:
        head = f"{BRAND}: {format_kes(amount)} received ({trans_id})"
        target = f" for {first.loan_number}{more}." if first else "."
        paid = " Loan fully paid. Thank you!" if len(loans) == 1 else " Loans fully paid. Thank you!"
        balance = (f" Balance {format_kes(left)}." if left > 0 else paid) if first else ""
        extra = f" Credit {format_kes(credit)}." if credit > 0 else ""
        fix_long, fix_short = f" Wrong loan? Reply MOVE {trans_id} LOAN-NUMBER", " Wrong loan? Reply MOVE"
    return _fit(
        [
            head + target + balance + extra + fix_long,
            head + target + balance + extra + fix_short,
            head + target + balance + fix_short,
            head + target + balance,
        ]
    )


def officer_note_text(
    *,
    borrower_name: str,
    amount: Decimal,
    trans_id: str,
    loans: list[ReceiptLine],
    credit: Decimal,
    strategy: str,
) -> str:
    parts = [f"Payment {trans_id}: {format_kes(amount)} from {borrower_name}"]
    parts += [f"{line.loan_number} now {format_kes(line.outstanding_after)}" for line in loans]
    if credit > 0:
        parts.append(f"{format_kes(credit)} held as credit")
    parts.append(f"matched by {strategy.replace('_', ' ')}")
    return "; ".join(parts)


def unmatched_alert_text(*, trans_id: str, amount: Decimal, bill_reference: str, payer_name: str) -> str:
    return (
        f"Unmatched payment {trans_id}: {format_kes(amount)} from {payer_name or 'unknown payer'}, "
        f"account {bill_reference!r}. Assign it to a loan or mark it reviewed."
    )


def failed_alert_text(*, trans_id: str, amount: Decimal, error: str) -> str:
    return (
        f"Payment {trans_id} ({format_kes(amount)}) failed to post: {error[:300]}. Reprocess it once fixed."
    )


def credit_alert_text(*, trans_id: str, borrower_name: str, credit: Decimal) -> str:
    return (
        f"Overpayment {trans_id}: {format_kes(credit)} held as credit for {borrower_name} "
        "(no active loan left to take it). Refund or apply it."
    )


def held_alert_text(*, trans_id: str, amount: Decimal, reason: str) -> str:
    return (
        f"Payment {trans_id} ({format_kes(amount)}) is held, not posted: {reason}. "
        "Assign it to a loan or mark it reviewed."
    )


def move_confirmation_text(
    *, language: str, trans_id: str, amount: Decimal, loan_number: str, outstanding: Decimal
) -> str:
    """The SMS a borrower gets when their own request moved a payment: one segment, GSM-7."""
    if language == "sw":
        return _fit(
            [
                f"{BRAND}: Malipo {trans_id} ya {format_kes(amount)} yamehamishwa kwa {loan_number} kama "
                f"ulivyoomba. Salio {format_kes(outstanding)}.",
                f"{BRAND}: {trans_id} {format_kes(amount)} imehamishwa kwa {loan_number}.",
            ]
        )
    return _fit(
        [
            f"{BRAND}: As you asked, payment {trans_id} of {format_kes(amount)} was moved to {loan_number}. "
            f"Balance {format_kes(outstanding)}.",
            f"{BRAND}: {trans_id} {format_kes(amount)} moved to {loan_number}.",
        ]
    )


def move_officer_note_text(*, borrower_name: str, trans_id: str, amount: Decimal, loan_number: str) -> str:
    return f"{borrower_name} moved payment {trans_id} ({format_kes(amount)}) to {loan_number} themselves, by phone."


def review_request_alert_text(
    *, borrower_name: str, trans_id: str, amount: Decimal, loan_number: str | None, reason: str
) -> str:
    wanted = f" to {loan_number}" if loan_number else ""
    return (
        f"Review requested: {borrower_name} asks for payment {trans_id} ({format_kes(amount)}) to be moved{wanted}; "
        f"it was not moved automatically because {reason}. Assign it or mark it reviewed."
    )
