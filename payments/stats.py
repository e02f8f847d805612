"""Payment statistics for the API and the staff dashboard: what came in, what was posted, what needs people."""

import datetime
from decimal import Decimal

from django.db.models import Aggregate, Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.dates import NAIROBI, nairobi_midnight
from core.money import CENT, ZERO
from payments.models import NEEDS_STAFF, MpesaTransaction

DAYS = 30
PERIODS = (("today", 1), ("last_7_days", 7), ("last_30_days", DAYS))
COUNTED_STATUSES = ("processed", "unmatched", "failed")

Status = MpesaTransaction.Status


def _money(value: Decimal | None) -> Decimal:
    return (value or ZERO).quantize(CENT)


def _daily_rows(queryset: QuerySet, first_day: datetime.date, today: datetime.date) -> dict:
    """One row per Nairobi day that had payments, with per-status counts and sums (one query)."""
    by_status: dict[str, Aggregate] = {}
    for status in COUNTED_STATUSES:
        only = Q(status=status)
        by_status[f"{status}_count"] = Count("id", filter=only)
        by_status[f"{status}_amount"] = Sum("amount", filter=only)
    rows = (
        # order_by() first: an ordering inherited from the caller would otherwise join the GROUP BY.
        queryset.order_by()
        .filter(
            trans_time__gte=nairobi_midnight(first_day),
            # Up to the end of today, not "now": Safaricom's clock may run slightly ahead of ours.
            trans_time__lt=nairobi_midnight(today + datetime.timedelta(days=1)),
        )
        .annotate(day=TruncDate("trans_time", tzinfo=NAIROBI))
        .values("day")
        .annotate(
            # Not named "amount": that would shadow the field for the conditional sums below.
            all_count=Count("id"),
            all_amount=Sum("amount"),
            waiting_count=Count("id", filter=Q(status=Status.RECEIVED)),
            processing_total=Sum("processing_ms"),
            processing_count=Count("processing_ms"),
            **by_status,
        )
        .order_by("day")
    )
    return {row["day"]: row for row in rows}


def _period(all_rows: list[dict], start: datetime.date) -> dict:
    rows = [row for row in all_rows if row["day"] >= start]

    def total(key: str) -> int:
        return sum(row[key] or 0 for row in rows)

    def amount(key: str) -> Decimal:
        return _money(sum((row[key] or ZERO for row in rows), ZERO))

    count = total("all_count")
    settled = count - total("waiting_count")  # every payment no longer waiting to be processed
    processed = total("processed_count")
    timed = total("processing_count")
    return {
        "start": start,
        "received": {"count": count, "amount": amount("all_amount")},
        **{
            status: {"count": total(f"{status}_count"), "amount": amount(f"{status}_amount")}
            for status in COUNTED_STATUSES
        },
        "success_rate": round(processed / settled, 4) if settled else None,
        "average_processing_ms": round(total("processing_total") / timed, 1) if timed else None,
    }


def payment_stats(*, queryset: QuerySet, now: datetime.datetime | None = None) -> dict:
    """Statistics over ``queryset`` (of ``MpesaTransaction``; pass what the reader may see), in two
    queries whatever the volume.

    Returns plain values (``Decimal`` amounts, ``datetime.date`` days)::

        {"generated_at": now,
         "periods": {"today" | "last_7_days" | "last_30_days": {
             "start": first day, "received" | "processed" | "unmatched" | "failed": {"count", "amount"},
             "success_rate": processed / payments not waiting (0..1, 4 places) or None,
             "average_processing_ms": float or None}},
         "pending": payments still waiting (status received), any date,
         "needing_attention": unmatched, failed or held and not reviewed, any date,
         "daily": [{"date", "count", "amount"}] for the last 30 days, oldest first, empty days included}

    Days are Nairobi local days of ``trans_time`` (when the payer paid); "today" starts at local
    midnight. "received" counts every payment in the period whatever its status. Raises nothing.
    """
    now = now or timezone.now()
    today = now.astimezone(NAIROBI).date()
    days = [today - datetime.timedelta(days=back) for back in range(DAYS - 1, -1, -1)]
    by_day = _daily_rows(queryset, days[0], today)
    rows = list(by_day.values())
    backlog = queryset.order_by().aggregate(
        pending=Count("id", filter=Q(status=Status.RECEIVED)),
        # Same condition as MpesaTransactionQuerySet.needing_attention, as a conditional count.
        needing_attention=Count("id", filter=Q(status__in=NEEDS_STAFF, reviewed_at__isnull=True)),
    )
    return {
        "generated_at": now,
        "periods": {
            name: _period(rows, today - datetime.timedelta(days=length - 1)) for name, length in PERIODS
        },
        "pending": backlog["pending"],
        "needing_attention": backlog["needing_attention"],
        "daily": [
            {
                "date": day,
                "count": by_day[day]["all_count"] if day in by_day else 0,
                "amount": _money(by_day[day]["all_amount"]) if day in by_day else ZERO,
            }
            for day in days
        ],
    }
