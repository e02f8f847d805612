"""Reads for M-Pesa matching and the staff views.

``DatabaseDirectory`` answers the matcher's questions with indexed lookups only (loan number,
phone number, national ID, MSISDN digest, masked number and names, a borrower's loans), so neither
the number of queries per payment nor the rows they read grow with the portfolio.
"""

import datetime
import functools
from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.lookups import Exact

from core.dates import nairobi_midnight
from core.db import Columns, fetch_rows
from core.models import AuditEvent, Borrower, BorrowerPhone, Loan, MaskedPhoneKey, User
from core.names import masked_key, masked_overflow_key
from payments.matching import BorrowerCandidate, LoanCandidate
from payments.models import (
    Allocation,
    BalanceGap,
    CallbackRequest,
    MpesaConfiguration,
    MpesaTransaction,
    TransactionSource,
    TransactionStatus,
)

_MASKED_ENOUGH = 2  # two borrowers who fit a masked number and the names: nobody is singled out

# The matcher's hot lookups, written out and run prepared on PostgreSQL (core.db.fetch_rows): the ORM
# compiled them again for each payment, at more cost than running them. A loan is read with the
# fields of a LoanCandidate (its outstanding is the sum of the four balances, Loan.outstanding).
_CANDIDATE_LOAN = Columns(
    Loan,
    "l",
    only=(
        "id",
        "loan_number",
        "borrower",
        "status",
        "due_date",
        "penalties",
        "fees",
        "interest",
        "principal",
    ),
)
_BORROWER_BY_PHONE = (
    "SELECT p.borrower_id, b.full_name FROM core_borrowerphone p JOIN core_borrower b ON b.id = p.borrower_id "
    "WHERE p.{} = %s"
)
_BORROWER_BY_PHONE_NUMBER = _BORROWER_BY_PHONE.format("number")
_BORROWER_BY_MSISDN_HASH = _BORROWER_BY_PHONE.format("msisdn_hash")
_BORROWER_BY_NATIONAL_ID = "SELECT id, full_name FROM core_borrower WHERE national_id = %s"


@functools.cache
def _loans_by_number_sql(count: int) -> str:
    placeholders = ", ".join(["%s"] * count)
    return f"SELECT {_CANDIDATE_LOAN.sql} FROM core_loan l WHERE l.loan_number IN ({placeholders})"  # noqa: S608


@functools.cache
def _active_loans_sql() -> str:
    return (
        f"SELECT {_CANDIDATE_LOAN.sql} FROM core_loan l "  # noqa: S608
        "WHERE l.borrower_id = %s AND l.status = %s ORDER BY l.due_date, l.id"
    )


def _loans(sql: str, params: Sequence) -> list[LoanCandidate]:
    loans = (_CANDIDATE_LOAN.instance(row) for row in fetch_rows(sql, params))
    return [
        LoanCandidate(
            id=loan.pk,
            loan_number=loan.loan_number,
            borrower_id=loan.borrower_id,
            status=loan.status,
            due_date=loan.due_date,
            outstanding=loan.outstanding,
        )
        for loan in loans
    ]


def _borrower(sql: str, params: Sequence) -> BorrowerCandidate | None:
    found = fetch_rows(sql, params)
    return BorrowerCandidate(*found[0]) if found else None


class DatabaseDirectory:
    """Use one per payment: it remembers the payer's lookups, which the matcher asks more than once."""

    def __init__(self) -> None:
        self._borrowers: dict[tuple[str, str], BorrowerCandidate | None] = {}

    def loan_by_numbers(self, numbers: Sequence[str]) -> LoanCandidate | None:
        if not numbers:
            return None
        by_number = {
            loan.loan_number: loan for loan in _loans(_loans_by_number_sql(len(numbers)), list(numbers))
        }
        return next((by_number[number] for number in numbers if number in by_number), None)

    def borrower_by_phone(self, e164: str) -> BorrowerCandidate | None:
        key = ("phone", e164)
        if key not in self._borrowers:
            self._borrowers[key] = _borrower(_BORROWER_BY_PHONE_NUMBER, [e164])
        return self._borrowers[key]

    def borrower_by_national_id(self, national_id: str) -> BorrowerCandidate | None:
        return _borrower(_BORROWER_BY_NATIONAL_ID, [national_id])

    def borrower_by_msisdn_hash(self, digest: str) -> BorrowerCandidate | None:
        key = ("msisdn_hash", digest.lower())
        if key not in self._borrowers:
            self._borrowers[key] = _borrower(_BORROWER_BY_MSISDN_HASH, [digest.lower()])
        return self._borrowers[key]

    def borrowers_by_masked_msisdn(
        self, prefix: str, suffix: str, names: Collection[str]
    ) -> list[BorrowerCandidate]:
        # One query on the masked-number keys (core.models.MaskedPhoneKey, core.names): the key of
        # two of the names under the last three digits (of the one name, when only one is given)
        # finds the few phones whose name holds both, and each of those must hold every other name
        # too (a count of its keys, probed per phone); the prefix and the rest of the suffix are
        # checked on the same rows. The two longest names make the key: as a rule, the rarer ones.
        tokens = sorted(names, key=lambda token: (-len(token), token))
        if not tokens:
            return []
        keys = MaskedPhoneKey.objects.filter(
            phone__number__startswith="+" + prefix, phone__number__endswith=suffix
        )
        if len(tokens) == 1:
            # One key, read in borrower order: the first two borrowers are all it reads.
            keys = keys.filter(key=masked_key(suffix, tokens[0]))
        else:
            first, second = tokens[:2]
            # A name longer than core.names.PAIRED_TOKENS has no pairs with its later tokens, which
            # have "<token>+*" keys instead: few, since long names are. Read with the pair.
            anchors = [
                masked_key(suffix, first, second),
                masked_overflow_key(suffix, first),
                masked_overflow_key(suffix, second),
            ]
            # A count, not one EXISTS per name: PostgreSQL would turn an EXISTS into a join and might
            # read all the phones with a common name to find the few with the pair.
            held = Subquery(
                MaskedPhoneKey.objects.filter(
                    phone_id=OuterRef("phone_id"), key__in=[masked_key(suffix, token) for token in tokens]
                )
                .order_by()
                .values("phone_id")
                .annotate(held=Count("id"))
                .values("held")
            )
            keys = keys.filter(Exact(held, len(tokens)), key__in=anchors)
        found = keys.order_by("borrower_id").values("borrower_id").distinct()[:_MASKED_ENOUGH]
        rows = Borrower.objects.filter(pk__in=found).order_by("pk").values_list("id", "full_name")
        return [BorrowerCandidate(borrower_id, full_name) for borrower_id, full_name in rows]

    def active_loans(self, borrower_id: int) -> list[LoanCandidate]:
        return _loans(_active_loans_sql(), [borrower_id, Loan.Status.ACTIVE])


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


def reconciliation_report(*, day: datetime.date, user: User | None = None) -> dict[str, Any]:
    """The reconciliation of one Nairobi day (of ``trans_time``), over the payments ``user`` may see
    (every payment when ``None``): counts and amounts by source and by status (every choice present,
    zero included; both add up to the day's payments), the balance gaps whose later payment falls on
    that day (still open; none for a user who is not an admin), and the active paybill's last Pull
    Transactions. Money is ``Decimal``; the API and the pages format it."""
    start = nairobi_midnight(day)
    end = nairobi_midnight(day + datetime.timedelta(days=1))
    payments = MpesaTransaction.objects.all() if user is None else MpesaTransaction.objects.visible_to(user)
    of_day = payments.filter(trans_time__gte=start, trans_time__lt=end)

    def totals(field: str, choices: type[models.TextChoices]) -> dict[str, dict[str, Any]]:
        rows = {
            row[field]: row
            for row in of_day.order_by().values(field).annotate(count=Count("id"), amount=Sum("amount"))
        }
        return {
            value: {
                "count": rows.get(value, {}).get("count", 0),
                "amount": rows.get(value, {}).get("amount") or Decimal("0.00"),
            }
            for value in choices.values
        }

    # A gap is money the system never identified: it is in no officer's portfolio, and the two
    # payments around it (whoever paid just before and after) say nothing about whose it is. So an
    # officer sees none, as in the daily digest; finding the money is the paybill's reconciliation.
    gaps = BalanceGap.objects.none() if user is not None and not user.is_admin else BalanceGap.objects.all()
    gaps = (
        gaps.filter(
            resolved_at__isnull=True,
            to_transaction__trans_time__gte=start,
            to_transaction__trans_time__lt=end,
        )
        .select_related("from_transaction", "to_transaction")
        .order_by("to_transaction__trans_time", "id")
    )
    config = MpesaConfiguration.objects.filter(is_active=True).order_by("-updated_at").first()
    return {
        "date": day,
        "by_source": totals("source", TransactionSource),
        "by_status": totals("status", TransactionStatus),
        "drift": [
            {
                "from_trans_id": gap.from_transaction.trans_id,
                "to_trans_id": gap.to_transaction.trans_id,
                "gap": gap.gap,
            }
            for gap in gaps
        ],
        "last_pull": {
            "short_code": config.business_short_code if config else None,
            "at": config.last_pull_at if config else None,
            "code": (config.last_pull_code or None) if config else None,
            "message": (config.last_pull_message or None) if config else None,
        },
    }


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


# --- Operations: read by the ops checks (payments.services.monitoring) and by /metrics (payments.metrics),
# so that the alerts of the application and those of Prometheus see the same figures.

# The failure-rate check's window, on M-Pesa's time of the payment.
FAILURE_RATE_WINDOW = datetime.timedelta(minutes=30)


def confirmation_last_at(*, config: MpesaConfiguration, since: datetime.datetime) -> datetime.datetime | None:
    """When the paybill last received a confirmation: its newest payment, or a later confirmation
    request that made none (a duplicate, a malformed one): either way the callbacks reach us. Requests
    are looked for back to ``since`` only (the table holds every callback; its index is on the time)."""
    newest = (
        MpesaTransaction.objects.filter(config=config).order_by("-id").values_list("received_at", flat=True)
    ).first()
    other = (
        CallbackRequest.objects.filter(
            config=config, kind=CallbackRequest.Kind.CONFIRMATION, received_at__gte=since
        )
        .order_by("-received_at")
        .values_list("received_at", flat=True)
        .first()
    )
    return max((moment for moment in (newest, other) if moment is not None), default=None)


def payments_recent_by_status(*, now: datetime.datetime) -> dict[str, int]:
    """The payments whose M-Pesa time (``trans_time``, indexed) falls in the ``FAILURE_RATE_WINDOW``
    up to ``now``, counted by their status now (statuses with none are left out)."""
    return dict(
        MpesaTransaction.objects.filter(trans_time__gte=now - FAILURE_RATE_WINDOW, trans_time__lte=now)
        .values_list("status")
        .annotate(count=Count("id"))
        .order_by()
    )
