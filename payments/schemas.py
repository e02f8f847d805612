"""Shapes of the M-Pesa REST API: payments, where their money went, staff actions, statistics.

Money leaves as two-decimal strings (``core.schemas.Money``); payers' numbers and borrowers'
phones leave masked.
"""

import datetime as dt

from ninja import Field, Schema

from core.schemas import LoanBorrowerOut, Money
from payments.models import (
    Allocation,
    MpesaTransaction,
    StatusQuery,
    StatusQueryOutcome,
    StatusQueryState,
    TransactionSource,
    TransactionStatus,
)


class TransactionFiltersIn(Schema):
    """Query parameters of the payment list; every one optional. Checked again, with the phone,
    by ``payments.filters.transactions_filter``."""

    status: TransactionStatus | None = None
    source: TransactionSource | None = Field(None, description="how the payment reached the books")
    phone: str | None = Field(None, description="any Kenyan form: 0712345678, +254 712 345 678, 254712345678")
    trans_id: str | None = None
    min_amount: Money | None = None
    max_amount: Money | None = None
    date_from: dt.date | None = Field(None, description="first Nairobi day of trans_time, inclusive")
    date_to: dt.date | None = Field(None, description="last Nairobi day of trans_time, inclusive")


class TransactionOut(Schema):
    trans_id: str
    amount: Money
    trans_time: dt.datetime
    status: TransactionStatus
    source: TransactionSource
    identified_by: MpesaTransaction.IdentifiedBy | None
    match_strategy: MpesaTransaction.Strategy | None
    bill_reference: str
    borrower: LoanBorrowerOut | None
    msisdn: str = Field(description="the payer's number masked, or the start of its SHA-256 digest")
    reviewed: bool
    held_reason: str = Field(
        description="why the payment was held for staff instead of posted; empty if never"
    )

    @staticmethod
    def resolve_identified_by(obj: MpesaTransaction) -> str | None:
        return obj.identified_by or None

    @staticmethod
    def resolve_match_strategy(obj: MpesaTransaction) -> str | None:
        return obj.match_strategy or None

    @staticmethod
    def resolve_msisdn(obj: MpesaTransaction) -> str:
        return obj.msisdn_display

    @staticmethod
    def resolve_reviewed(obj: MpesaTransaction) -> bool:
        return obj.reviewed_at is not None


class AllocationOut(Schema):
    loan_number: str | None
    target: Allocation.Target
    amount: Money
    reversed: bool

    @staticmethod
    def resolve_loan_number(obj: Allocation) -> str | None:
        return obj.loan.loan_number if obj.loan is not None else None

    @staticmethod
    def resolve_reversed(obj: Allocation) -> bool:
        return obj.reversed_at is not None


class TransactionDetailOut(TransactionOut):
    allocations: list[AllocationOut]
    notes: list[str]
    attempts: int
    last_error: str
    received_at: dt.datetime
    processed_at: dt.datetime | None
    processing_ms: float | None
    payer_name: str

    @staticmethod
    def resolve_allocations(obj: MpesaTransaction) -> list[Allocation]:
        return list(obj.allocations.all())

    @staticmethod
    def resolve_notes(obj: MpesaTransaction) -> list[str]:
        return [str(note) for note in obj.notes]


class ReprocessIn(Schema):
    reason: str = ""


class AssignIn(Schema):
    loan_number: str = Field(min_length=1)
    reason: str = ""


class ReviewIn(Schema):
    note: str = ""


class ReverseIn(Schema):
    reason: str


class CountAmountOut(Schema):
    count: int
    amount: Money


class PeriodStatsOut(Schema):
    start: dt.date = Field(description="first Nairobi day of the period; the period runs to today inclusive")
    received: CountAmountOut = Field(description="every payment in the period, whatever its status")
    processed: CountAmountOut
    unmatched: CountAmountOut
    failed: CountAmountOut
    success_rate: float | None = Field(
        description="processed / every payment no longer waiting (0..1); null when there is none"
    )
    average_processing_ms: float | None


class PeriodsOut(Schema):
    today: PeriodStatsOut
    last_7_days: PeriodStatsOut
    last_30_days: PeriodStatsOut


class DayOut(Schema):
    date: dt.date
    count: int
    amount: Money


class StatsOut(Schema):
    generated_at: dt.datetime
    periods: PeriodsOut
    pending: int = Field(description="payments waiting to be processed (status received), at any date")
    needing_attention: int = Field(
        description="unmatched or failed payments nobody has reviewed, at any date"
    )
    daily: list[DayOut] = Field(
        description="the last 30 Nairobi days, oldest first, days without payments included"
    )


class StatusQueryIn(Schema):
    trans_id: str = Field(min_length=1, max_length=32, description="the M-Pesa code the borrower paid with")


class StatusQueryOut(Schema):
    id: int
    trans_id: str
    state: StatusQueryState
    requested_at: dt.datetime
    answered_at: dt.datetime | None
    outcome: StatusQueryOutcome | None = Field(description="null until Daraja answers")
    result_code: str
    result_description: str
    answer: dict = Field(description="Daraja's result parameters by name, as it sent them")

    @staticmethod
    def resolve_outcome(obj: StatusQuery) -> str | None:
        return obj.outcome or None


class ReconciliationIn(Schema):
    date: dt.date | None = Field(None, description="a Nairobi day, YYYY-MM-DD (default: today)")


# One field per choice: the reconciliation test checks them against TransactionSource and
# TransactionStatus, so that a status added later cannot drop out of the report's totals.
class BySourceOut(Schema):
    callback: CountAmountOut
    pull: CountAmountOut
    statement: CountAmountOut
    status_query: CountAmountOut


class ByStatusOut(Schema):
    received: CountAmountOut
    processed: CountAmountOut
    unmatched: CountAmountOut
    failed: CountAmountOut
    held: CountAmountOut
    reversed: CountAmountOut


class DriftOut(Schema):
    from_trans_id: str
    to_trans_id: str
    gap: Money = Field(description="money the paybill received between the two that the system never saw")


class LastPullOut(Schema):
    short_code: str | None
    at: dt.datetime | None
    code: str | None = Field(description="Daraja's answer: 1000 transactions, 1001 none or not provisioned")
    message: str | None


class ReconciliationOut(Schema):
    date: dt.date
    by_source: BySourceOut = Field(description="the day's payments by how they reached the books")
    by_status: ByStatusOut = Field(
        description="the same payments by where they are now: counts and amounts add up to by_source's"
    )
    drift: list[DriftOut] = Field(
        description=(
            "open balance gaps whose later payment is on this day; for admins only (always empty for a "
            "loan officer: money nobody has identified is in no portfolio)"
        )
    )
    last_pull: LastPullOut
