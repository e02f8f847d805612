"""Shapes of the core REST API: loans, repayments, borrowers. Phones and IDs leave masked."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from ninja import Schema
from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from core.exceptions import InvalidAmount
from core.models import Borrower, Language, Loan, LoanStatus, Repayment
from core.money import to_money
from core.phones import mask_phone


def _parse_money(value: object) -> Decimal:
    try:
        return to_money(value)
    except InvalidAmount as exc:
        # pydantic only turns ValueError into a validation error (a 422 naming the field).
        raise ValueError(exc.detail) from None


# Serialised "always", not only in JSON mode: ninja dumps responses in python mode and lets
# DjangoJSONEncoder write Decimals with str(), which gives "1250" rather than "1250.00".
Money = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["1250.00"]}),
]
"""An amount of shillings: a JSON string with two decimals; accepts text or integers, never floats."""


def mask_national_id(national_id: str | None) -> str | None:
    """``"12345678"`` -> ``"*****678"``; an ID of three characters or fewer is masked entirely."""
    if not national_id:
        return None
    visible = 3 if len(national_id) > 3 else 0
    return "*" * (len(national_id) - visible) + national_id[len(national_id) - visible :]


class ErrorOut(Schema):
    detail: str


class LoanSummaryOut(Schema):
    loan_number: str
    status: LoanStatus
    due_date: date
    outstanding: Money
    principal: Money
    interest: Money
    fees: Money
    penalties: Money


class SplitOut(Schema):
    penalties: Money
    fees: Money
    interest: Money
    principal: Money


class RepaymentOut(Schema):
    id: int
    amount: Money
    posted_at: datetime
    reference: str
    split: SplitOut
    reversed: bool

    @staticmethod
    def resolve_reversed(obj: Repayment) -> bool:
        return obj.is_reversed


class LoanBorrowerOut(Schema):
    """A borrower as a loan shows it; ``BorrowerOut`` is the whole borrower."""

    id: int
    name: str
    phone: str | None

    @staticmethod
    def resolve_name(obj: Borrower) -> str:
        return obj.full_name

    @staticmethod
    def resolve_phone(obj: Borrower) -> str | None:
        phone = obj.primary_phone
        return mask_phone(phone.number) if phone else None


class LoanDetailOut(LoanSummaryOut):
    borrower: LoanBorrowerOut
    repayments: list[RepaymentOut]

    @staticmethod
    def resolve_repayments(obj: Loan) -> list[Repayment]:
        return list(obj.repayments.all())


class BorrowerOut(LoanBorrowerOut):
    phones: list[str]
    national_id: str | None
    preferred_language: Language
    loan_officer: str | None
    credit_balance: Money
    loans: list[LoanSummaryOut]

    @staticmethod
    def resolve_phones(obj: Borrower) -> list[str]:
        return [mask_phone(phone.number) for phone in obj.phones.all()]

    @staticmethod
    def resolve_national_id(obj: Borrower) -> str | None:
        return mask_national_id(obj.national_id)

    @staticmethod
    def resolve_loan_officer(obj: Borrower) -> str | None:
        return obj.loan_officer.get_username() if obj.loan_officer else None

    @staticmethod
    def resolve_loans(obj: Borrower) -> list[Loan]:
        # Set by selectors.borrower_get_for_user_by_phone, scoped to the caller; there is
        # deliberately no fallback to the unscoped obj.loans.
        return obj.visible_loans
