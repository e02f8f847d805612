"""Reads of M-Pesa payments for staff: list filtering and scoped lookup.

Shared by the REST API, the staff web pages and the CSV export, so a filter means the same thing
everywhere. Every function here takes and returns querysets or rows; nothing writes.
"""

import datetime
from decimal import Decimal
from typing import TypeVar

from django.db.models import Prefetch, Q, QuerySet

from core.dates import nairobi_midnight
from core.exceptions import InvalidInput, NotFound
from core.models import BorrowerPhone, User
from core.money import to_money
from core.phones import msisdn_hash, normalize_phone
from payments.models import Allocation, MpesaTransaction

T = TypeVar("T")


def _given(value: T) -> T | None:
    # Web forms send "" for an untouched field; treat it as "no filter", like None.
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def _as_date(value: datetime.date | str, name: str) -> datetime.date:
    if isinstance(value, datetime.datetime):
        raise InvalidInput(f"{name} must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


def _as_status(value: str) -> str:
    status = str(value).strip().lower()
    if status not in MpesaTransaction.Status.values:
        raise InvalidInput(f"status {value!r} is not one of {', '.join(MpesaTransaction.Status.values)}")
    return status


def msisdn_forms(e164: str) -> list[str]:
    """Every way a payment may have stored the payer's number ``e164``: as sent by Daraja
    (``2547…``), in E.164, in the local ``07…`` form, and as the SHA-256 digest M-Pesa sends instead
    of the number (lower and upper case hex, so the plain index on ``msisdn`` still serves)."""
    digits = e164.removeprefix("+")
    digest = msisdn_hash(e164)
    return [digits, e164, "0" + digits[3:], digest, digest.upper()]


def transactions_filter(
    queryset: QuerySet,
    *,
    status: str | None = None,
    source: str | None = None,
    phone: str | None = None,
    trans_id: str | None = None,
    min_amount: Decimal | str | int | None = None,
    max_amount: Decimal | str | int | None = None,
    date_from: datetime.date | str | None = None,
    date_to: datetime.date | str | None = None,
) -> QuerySet:
    """``queryset`` (of ``MpesaTransaction``) narrowed by every filter given; ``None`` or blank means
    no filter. ``phone`` is any Kenyan form and matches the payer's MSISDN (plain or hashed) or a
    borrower who owns the number; ``trans_id`` is the whole receipt number in any case; amounts are inclusive;
    ``date_from``/``date_to`` are inclusive Nairobi local days of ``trans_time``.

    Raises ``InvalidPhoneNumber``, ``InvalidAmount`` or ``InvalidInput`` (unknown status, a bad date,
    or a range whose start is after its end); each is a 422 at the API."""
    status, trans_id, phone = _given(status), _given(trans_id), _given(phone)
    if status is not None:
        queryset = queryset.filter(status=_as_status(status))
    source = _given(source)
    if source is not None:
        if str(source).strip().lower() not in MpesaTransaction.Source.values:
            raise InvalidInput(f"source {source!r} is not one of {', '.join(MpesaTransaction.Source.values)}")
        queryset = queryset.filter(source=str(source).strip().lower())
    if trans_id is not None:
        # Staff copy receipt numbers from SMS in any case; they are stored as M-Pesa sent them.
        # Stored upper-case (parsing does it); an exact match keeps the unique index usable.
        queryset = queryset.filter(trans_id=trans_id.strip().upper())
    if phone is not None:
        e164 = normalize_phone(phone)
        owners = BorrowerPhone.objects.filter(number=e164).values("borrower_id")
        # A subquery, not a join on borrower__phones: a join would repeat a payment once per phone.
        queryset = queryset.filter(Q(msisdn__in=msisdn_forms(e164)) | Q(borrower_id__in=owners))

    min_amount, max_amount = _given(min_amount), _given(max_amount)
    low = None if min_amount is None else to_money(min_amount)
    high = None if max_amount is None else to_money(max_amount)
    if low is not None and high is not None and low > high:
        raise InvalidInput(f"min_amount {low} is more than max_amount {high}")
    if low is not None:
        queryset = queryset.filter(amount__gte=low)
    if high is not None:
        queryset = queryset.filter(amount__lte=high)

    date_from, date_to = _given(date_from), _given(date_to)
    first = None if date_from is None else _as_date(date_from, "date_from")
    last = None if date_to is None else _as_date(date_to, "date_to")
    if first is not None and last is not None and first > last:
        raise InvalidInput(f"date_from {first} is after date_to {last}")
    # Half-open ranges of local midnights: a payment at 23:59:59 belongs to its day, one at 00:00 to the next.
    if first is not None:
        queryset = queryset.filter(trans_time__gte=nairobi_midnight(first))
    if last is not None:
        queryset = queryset.filter(trans_time__lt=nairobi_midnight(last + datetime.timedelta(days=1)))
    return queryset


def transactions_for_user(user: User) -> QuerySet:
    """The payments ``user`` may see, newest first, with what a list row shows (borrower and their
    phones) loaded in a fixed number of queries. Officers see their portfolio's payments; payments
    that identify no borrower are visible to admins only."""
    return (
        MpesaTransaction.objects.visible_to(user)
        .select_related("borrower")
        .prefetch_related("borrower__phones")
        .order_by("-trans_time", "-id")
    )


def transaction_get(*, trans_id: str, user: User | None) -> MpesaTransaction:
    """The payment ``trans_id`` with its borrower, the borrower's phones and its allocations (with
    their loans) loaded in a fixed number of queries.

    With a ``user``, only a payment that user may see; ``user=None`` looks at every payment (say so
    deliberately: e.g. showing the payment a staff action just moved out of the actor's portfolio).
    Raises ``NotFound`` both for a payment that does not exist and for one the user may not see, so
    the answer does not reveal which receipts exist."""
    allocations = Allocation.objects.select_related("loan").order_by("id")
    payments = MpesaTransaction.objects.all() if user is None else MpesaTransaction.objects.visible_to(user)
    tx = (
        payments.filter(trans_id=trans_id.strip().upper())
        .select_related("borrower")
        .prefetch_related("borrower__phones", Prefetch("allocations", queryset=allocations))
        .first()
    )
    if tx is None:
        raise NotFound(f"no M-Pesa transaction {trans_id}")
    return tx
