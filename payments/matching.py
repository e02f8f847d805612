"""Who a payment is from and which loan it is for: one pure function per strategy, tried in order.

Identification (who):
1. ``bill_reference``: the account number names a loan, loosely (``LOAN-000123``, ``loan 123``,
   ``Loan000123``, ``000123``, ``123``). A loan that is no longer active identifies its borrower only.
2. ``payer_reference``: the account number is a borrower's phone number (any form) or national ID.
3. ``msisdn``: the payer's number, plain or as the SHA-256 digest M-Pesa sends. A masked number
   never identifies anyone by itself: it may only confirm a single candidate whose names also fit
   (the directory finds at most two borrowers by the mask and the names; two mean nobody).

Loan choice (which), once the borrower is known and no loan was named: ``single_loan`` when there
is one active loan, else ``amount`` when an outstanding is within the tolerance of the amount (the
closest wins, a tie goes to the oldest due), else ``oldest_due``. A borrower without active loans
gets the money as credit.

The functions read the world through a ``Directory`` (``payments.selectors.DatabaseDirectory`` in
production, a dictionary-backed one in tests) and return notes a person can read.
"""

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Protocol

from core.money import format_kes
from core.names import name_tokens
from core.phones import try_normalize_phone
from payments.parsing import normalize_bill_reference

LOAN_PREFIX = "LOAN"
# Without the LOAN prefix only short numbers are read as loan numbers: longer ones are more likely
# a phone number or a national ID, which strategy 2 handles.
_MAX_BARE_LOAN_DIGITS = 7
_MASK_PARTS = re.compile(r"^\s*(\d+)[\s*xX]*\*[\s*xX]*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    amount: Decimal
    bill_reference: str
    msisdn: str
    msisdn_kind: str
    msisdn_e164: str | None = None
    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""


@dataclass(frozen=True, slots=True)
class LoanCandidate:
    id: int
    loan_number: str
    borrower_id: int
    status: str
    due_date: date
    outstanding: Decimal


@dataclass(frozen=True, slots=True)
class BorrowerCandidate:
    id: int
    full_name: str


class Directory(Protocol):
    def loan_by_numbers(self, numbers: Sequence[str]) -> LoanCandidate | None: ...
    def borrower_by_phone(self, e164: str) -> BorrowerCandidate | None: ...
    def borrower_by_national_id(self, national_id: str) -> BorrowerCandidate | None: ...
    def borrower_by_msisdn_hash(self, digest: str) -> BorrowerCandidate | None: ...
    def borrowers_by_masked_msisdn(
        self, prefix: str, suffix: str, names: Collection[str]
    ) -> list[BorrowerCandidate]:
        """At most two borrowers with a number that starts with ``prefix`` and ends with ``suffix``
        (digits) and a name that holds every token of ``names`` (``core.names.name_tokens``)."""
        ...

    def active_loans(self, borrower_id: int) -> list[LoanCandidate]: ...


@dataclass(frozen=True, slots=True)
class Identification:
    borrower_id: int
    identified_by: str
    note: str
    loan: LoanCandidate | None = None  # set when the account number named an active loan


@dataclass(slots=True)
class MatchResult:
    borrower_id: int | None = None
    identified_by: str = ""
    loan: LoanCandidate | None = None
    match_strategy: str = ""
    payer_borrower_id: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return self.borrower_id is not None


# --- helpers ------------------------------------------------------------------------------------


def loan_number_candidates(bill_reference: str) -> list[str]:
    """Loan numbers an account number may mean: ``"loan 123"`` -> ``["LOAN-000123", "LOAN 123", "LOAN123"]``."""
    raw = (bill_reference or "").strip().upper()
    if not raw:
        return []
    compact = normalize_bill_reference(raw)
    candidates = [raw, compact]
    digits = None
    if compact.startswith(LOAN_PREFIX) and compact[len(LOAN_PREFIX) :].isdigit():
        digits = compact[len(LOAN_PREFIX) :]
    elif compact.isdigit() and len(compact) <= _MAX_BARE_LOAN_DIGITS:
        digits = compact
    if digits and int(digits) > 0:
        candidates.insert(0, f"{LOAN_PREFIX}-{int(digits):06d}")
    return list(dict.fromkeys(candidates))


def _given_names(payment: PaymentFacts) -> set[str]:
    return name_tokens(payment.first_name, payment.middle_name, payment.last_name)


def names_fit(payment: PaymentFacts, borrower: BorrowerCandidate) -> bool:
    """Every name M-Pesa gave for the payer appears in the borrower's name (case and order ignored)."""
    given = _given_names(payment)
    return bool(given) and given <= name_tokens(borrower.full_name)


def _payer(payment: PaymentFacts, directory: Directory) -> BorrowerCandidate | None:
    if payment.msisdn_kind == "plain" and payment.msisdn_e164:
        return directory.borrower_by_phone(payment.msisdn_e164)
    if payment.msisdn_kind == "hashed":
        return directory.borrower_by_msisdn_hash(payment.msisdn.lower())
    return None


# --- identification strategies, in order --------------------------------------------------------


def identify_by_bill_reference(payment: PaymentFacts, directory: Directory) -> Identification | None:
    candidates = loan_number_candidates(payment.bill_reference)
    if not candidates:
        return None
    loan = directory.loan_by_numbers(candidates)
    if loan is None:
        return None
    if loan.status != "active":
        return Identification(
            borrower_id=loan.borrower_id,
            identified_by="bill_reference",
            note=(
                f"bill reference {payment.bill_reference!r} names {loan.loan_number}, which is "
                f"{loan.status.replace('_', ' ')}; using its borrower's other loans"
            ),
        )
    return Identification(
        borrower_id=loan.borrower_id,
        identified_by="bill_reference",
        loan=loan,
        note=f"bill reference {payment.bill_reference!r} matched {loan.loan_number}",
    )


def identify_by_payer_reference(payment: PaymentFacts, directory: Directory) -> Identification | None:
    reference = (payment.bill_reference or "").strip()
    if not reference:
        return None
    e164 = try_normalize_phone(reference)
    if e164:
        borrower = directory.borrower_by_phone(e164)
        if borrower:
            return Identification(
                borrower_id=borrower.id,
                identified_by="payer_reference",
                note=f"bill reference is the phone number of borrower #{borrower.id}",
            )
    national_id = re.sub(r"\s+", "", reference).upper()
    if national_id.isalnum():
        borrower = directory.borrower_by_national_id(national_id)
        if borrower:
            return Identification(
                borrower_id=borrower.id,
                identified_by="payer_reference",
                note=f"bill reference is the national ID of borrower #{borrower.id}",
            )
    return None


def identify_by_msisdn(payment: PaymentFacts, directory: Directory) -> Identification | None:
    if payment.msisdn_kind in ("plain", "hashed"):
        borrower = _payer(payment, directory)
        if borrower is None:
            return None
        how = "hashed MSISDN" if payment.msisdn_kind == "hashed" else "payer's phone number"
        return Identification(
            borrower_id=borrower.id, identified_by="msisdn", note=f"{how} belongs to borrower #{borrower.id}"
        )
    if payment.msisdn_kind == "masked":
        parts = _MASK_PARTS.match(payment.msisdn.replace(" ", ""))
        given = _given_names(payment)
        if not parts or len(parts.group(1)) < 3 or len(parts.group(2)) < 3 or not given:
            return None
        # Two candidates are enough to know the names do not single anyone out.
        candidates = directory.borrowers_by_masked_msisdn(parts.group(1), parts.group(2), given)
        fitting = [borrower for borrower in candidates if names_fit(payment, borrower)]
        if len(fitting) == 1:
            return Identification(
                borrower_id=fitting[0].id,
                identified_by="msisdn",
                note=f"masked MSISDN {payment.msisdn} and the payer's names fit borrower #{fitting[0].id} only",
            )
    return None


IDENTIFIERS: tuple[Callable[[PaymentFacts, Directory], Identification | None], ...] = (
    identify_by_bill_reference,
    identify_by_payer_reference,
    identify_by_msisdn,
)


# --- loan choice --------------------------------------------------------------------------------


def _oldest_due_key(loan: LoanCandidate) -> tuple[date, int]:
    return (loan.due_date, loan.id)


def choose_loan(
    loans: Sequence[LoanCandidate], amount: Decimal, tolerance: Decimal
) -> tuple[LoanCandidate | None, str, str]:
    """``(loan, strategy, note)`` for a known borrower's active ``loans``; ``(None, "credit", note)`` when
    there are none."""
    if not loans:
        return None, "credit", "borrower has no active loan; the money is held as credit"
    if len(loans) == 1:
        return loans[0], "single_loan", f"{loans[0].loan_number} is the borrower's only active loan"
    close = [loan for loan in loans if abs(loan.outstanding - amount) <= tolerance]
    if close:
        best = min(close, key=lambda loan: (abs(loan.outstanding - amount), *_oldest_due_key(loan)))
        return (
            best,
            "amount",
            f"{format_kes(amount)} is within {format_kes(tolerance)} of {best.loan_number}'s "
            f"outstanding {format_kes(best.outstanding)}",
        )
    oldest = min(loans, key=_oldest_due_key)
    return oldest, "oldest_due", f"{oldest.loan_number} is the oldest due of {len(loans)} active loans"


def _settle_bare_number(
    payment: PaymentFacts, directory: Directory, found: Identification, notes: list[str]
) -> Identification | None:
    """A bare number (``654321``) can be a loan number and someone else's national ID at once. Then
    the payer decides when they are one of the two; otherwise nobody is guessed (staff decide)."""
    reference = normalize_bill_reference(payment.bill_reference)
    if not reference.isdigit():
        return found
    holder = directory.borrower_by_national_id(reference)
    if holder is None or holder.id == found.borrower_id:
        return found
    payer = _payer(payment, directory)
    if payer is not None and payer.id == found.borrower_id:
        return found
    if payer is not None and payer.id == holder.id:
        notes.append(
            f"{reference} is also a loan number of borrower #{found.borrower_id}; the payer settles it"
        )
        return Identification(
            borrower_id=holder.id,
            identified_by="payer_reference",
            note=f"bill reference is the national ID of borrower #{holder.id}, who paid",
        )
    notes.append(
        f"bill reference {payment.bill_reference!r} is both a loan number of borrower #{found.borrower_id} "
        f"and the national ID of borrower #{holder.id}; left for staff"
    )
    return None


def match_payment(payment: PaymentFacts, directory: Directory, tolerance: Decimal) -> MatchResult:
    """Run the strategies in order and return who the payment is from, which loan it goes to and why."""
    result = MatchResult()
    for identify in IDENTIFIERS:
        found = identify(payment, directory)
        if found is not None:
            break
    else:
        found = None
    if found is not None and found.identified_by == "bill_reference":
        found = _settle_bare_number(payment, directory, found, result.notes)
    if found is None:
        result.notes.append(
            f"nothing identified the payer: bill reference {payment.bill_reference!r}, "
            f"MSISDN {payment.msisdn_kind}"
            + (" (a masked number alone never identifies anyone)" if payment.msisdn_kind == "masked" else "")
        )
        return result
    result.borrower_id = found.borrower_id
    result.identified_by = found.identified_by
    result.notes.append(found.note)

    payer = _payer(payment, directory)
    if payer is not None and payer.id != found.borrower_id:
        result.payer_borrower_id = payer.id
        result.notes.append(f"paid by another borrower, #{payer.id}")

    if found.loan is not None:
        result.loan, result.match_strategy = found.loan, "bill_reference"
        return result
    loan, strategy, note = choose_loan(directory.active_loans(found.borrower_id), payment.amount, tolerance)
    result.loan, result.match_strategy = loan, strategy
    result.notes.append(note)
    return result
