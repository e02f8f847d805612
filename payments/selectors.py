"""Reads for M-Pesa matching and the staff views.

``DatabaseDirectory`` answers the matcher's questions with indexed lookups only (loan number,
phone number, national ID, MSISDN digest, a borrower's loans), so the number of queries per payment
does not grow with the portfolio.
"""

from collections.abc import Sequence

from django.db.models import Prefetch, Q, QuerySet
from django.db.models.functions import Right

from core.models import AuditEvent, Borrower, BorrowerPhone, Loan
from payments.matching import BorrowerCandidate, LoanCandidate
from payments.models import Allocation, MpesaTransaction

_LOAN_FIELDS = ("id", "loan_number", "borrower_id", "status", "due_date", "outstanding_total")
_MAX_MASKED_CANDIDATES = 5000


def _loan(row: dict) -> LoanCandidate:
    return LoanCandidate(
        id=row["id"],
        loan_number=row["loan_number"],
        borrower_id=row["borrower_id"],
        status=row["status"],
        due_date=row["due_date"],
        outstanding=row["outstanding_total"],
    )


class DatabaseDirectory:
    def loan_by_numbers(self, numbers: Sequence[str]) -> LoanCandidate | None:
        rows = {
            row["loan_number"]: row
            for row in Loan.objects.with_outstanding().filter(loan_number__in=numbers).values(*_LOAN_FIELDS)
        }
        return next((_loan(rows[number]) for number in numbers if number in rows), None)

    def borrower_by_phone(self, e164: str) -> BorrowerCandidate | None:
        row = (
            BorrowerPhone.objects.filter(number=e164)
            .values_list("borrower_id", "borrower__full_name")
            .first()
        )
        return BorrowerCandidate(*row) if row else None

    def borrower_by_national_id(self, national_id: str) -> BorrowerCandidate | None:
        row = Borrower.objects.filter(national_id=national_id).values_list("id", "full_name").first()
        return BorrowerCandidate(*row) if row else None

    def borrower_by_msisdn_hash(self, digest: str) -> BorrowerCandidate | None:
        row = (
            BorrowerPhone.objects.filter(msisdn_hash=digest.lower())
            .values_list("borrower_id", "borrower__full_name")
            .first()
        )
        return BorrowerCandidate(*row) if row else None

    def borrowers_by_masked_msisdn(self, prefix: str, suffix: str) -> list[BorrowerCandidate]:
        # Indexed on the last three digits; the rest of the suffix and the prefix are checked here.
        # Every candidate is returned (up to a sanity cap): the caller decides on the names of all.
        rows = (
            BorrowerPhone.objects.annotate(last_three=Right("number", 3))
            .filter(last_three=suffix[-3:], number__startswith="+" + prefix)
            .order_by()
            .values_list("borrower_id", "borrower__full_name", "number")[: _MAX_MASKED_CANDIDATES + 1]
        )
        found = {row[0]: BorrowerCandidate(row[0], row[1]) for row in rows if row[2].endswith(suffix)}
        if len(rows) > _MAX_MASKED_CANDIDATES:
            return []  # too many numbers fit to trust a name match: leave it to staff
        return list(found.values())

    def active_loans(self, borrower_id: int) -> list[LoanCandidate]:
        rows = (
            Loan.objects.with_outstanding()
            .filter(borrower_id=borrower_id, status=Loan.Status.ACTIVE)
            .order_by("due_date", "id")
            .values(*_LOAN_FIELDS)
        )
        return [_loan(row) for row in rows]


def transaction_audit_events(tx: MpesaTransaction) -> QuerySet[AuditEvent]:
    """Everything the audit trail holds about a payment, oldest first: actions on the payment itself,
    and the postings, reversals and credit movements made with its M-Pesa code as reference."""
    return (
        AuditEvent.objects.filter(
            Q(object_type=MpesaTransaction._meta.model_name, object_id=str(tx.pk))
            | Q(action__startswith="repayment.", data__reference=tx.trans_id)
            | Q(action__startswith="credit.", data__reference=tx.trans_id)
        )
        .select_related("loan", "actor_user")
        .order_by("created_at", "id")
    )


def payments_of_borrower(*, borrower: Borrower) -> QuerySet[MpesaTransaction]:
    """Every payment that is the borrower's: posted for them, or paid from one of their numbers and not
    yet matched to anyone (the M-Pesa ``MSISDN`` plain, as ``2547...``, or as its SHA-256 digest).
    Newest first; ``allocations.all()`` of each holds only its live (not reversed) allocations, with
    their loans."""
    phones = list(BorrowerPhone.objects.filter(borrower=borrower).values_list("number", "msisdn_hash"))
    payer_forms = [number.removeprefix("+") for number, _ in phones] + [digest for _, digest in phones]
    live = Allocation.objects.filter(reversed_at__isnull=True).select_related("loan").order_by("id")
    return (
        MpesaTransaction.objects.filter(
            Q(borrower=borrower) | Q(borrower__isnull=True, msisdn__in=payer_forms)
        )
        .exclude(status=MpesaTransaction.Status.REVERSED)
        .prefetch_related(Prefetch("allocations", queryset=live))
        .order_by("-trans_time", "-id")
    )
