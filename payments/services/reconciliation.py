"""Where the books and the paybill disagree: balance gaps, found from the ``OrgAccountBalance``
Daraja sends with each confirmation (the paybill's balance after that payment).

Ordered by time, a balance that exceeds the previous one plus its own payment means money arrived
in between that the system never saw (a balance below it is normal: charges and withdrawals are not
payments). Each gap is recorded once (a unique pair) and alerted once; a gap closed later by a
recovered payment is marked resolved.

Every recovery road ends with a scan (``balance_gaps_find``): a Pull Transactions sync (the beat task
and ``manage.py pull_transactions``), a statement import (command and admin upload), and a
Transaction Status answer that creates a payment. So a gap is found, or found explained, whichever
road runs, and also when the beat pull is switched off.
"""

import datetime
import logging
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.money import format_kes
from core.services.outbox import outbox_queue_for_staff, staff_to_alert
from payments.models import BalanceGap, MpesaConfiguration, MpesaTransaction

logger = logging.getLogger(__name__)

# How far back each scan looks; one earlier payment is read as the starting balance.
SCAN_DAYS = 3
GAPS_FIND_TASK = "payments.balance_gaps_find"  # payments.tasks.balance_gaps_find_task


def balance_gaps_find(
    *, config: MpesaConfiguration, since: datetime.datetime | None = None
) -> list[BalanceGap]:
    """Scan ``config``'s payments with a balance since ``since`` (default: the last three days) and
    record each gap not recorded yet, with one alert to staff; gaps that recovered payments now
    explain are marked resolved. Returns the gaps recorded now (none when run again)."""
    since = since or timezone.now() - datetime.timedelta(days=SCAN_DAYS)
    payments = MpesaTransaction.objects.filter(config=config).order_by("trans_time", "id")
    anchor = (
        payments.filter(trans_time__lt=since, org_account_balance__isnull=False)
        .order_by("-trans_time", "-id")
        .first()
    )
    rows = payments.filter(trans_time__gte=since).only(
        "id", "trans_id", "trans_time", "amount", "org_account_balance"
    )
    recorded = {
        (gap.from_transaction_id, gap.to_transaction_id): gap
        for gap in BalanceGap.objects.filter(config=config, to_transaction__trans_time__gte=since)
    }
    adjacent: set[tuple[int, int]] = set()
    explained: list[int] = []
    found = []
    earlier = anchor
    # Payments without a balance (recovered by a pull or a status query) since the last one with.
    unbalanced = Decimal("0.00")
    for later in rows.iterator():
        if later.org_account_balance is None:
            unbalanced += later.amount
            continue
        if earlier is not None and earlier.org_account_balance is not None:
            pair = (earlier.pk, later.pk)
            adjacent.add(pair)
            gap = later.org_account_balance - (earlier.org_account_balance + unbalanced + later.amount)
            known = recorded.get(pair)
            if gap > 0 and known is None:
                new = _record(config, earlier, later, gap)
                if new is not None:
                    found.append(new)
            elif gap <= 0 and known is not None and known.resolved_at is None:
                explained.append(known.pk)
        earlier, unbalanced = later, Decimal("0.00")
    # Gaps between payments that are no longer neighbours, or whose money has been found (recovered
    # payments without a balance between them), are resolved.
    open_gaps = BalanceGap.objects.filter(
        config=config, resolved_at__isnull=True, to_transaction__trans_time__gte=since
    )
    stale = [gap.pk for gap in open_gaps if (gap.from_transaction_id, gap.to_transaction_id) not in adjacent]
    if stale or explained:
        BalanceGap.objects.filter(pk__in=[*stale, *explained]).update(resolved_at=timezone.now())
    return found


def _record(
    config: MpesaConfiguration, earlier: MpesaTransaction, later: MpesaTransaction, gap
) -> BalanceGap | None:
    try:
        with transaction.atomic():
            recorded = BalanceGap.objects.create(
                config=config, from_transaction=earlier, to_transaction=later, gap=gap
            )
            outbox_queue_for_staff(
                users=staff_to_alert(),
                body=(
                    f"Paybill {config.business_short_code} received {format_kes(gap)} that the system never "
                    f"saw, between {earlier.trans_id} and {later.trans_id}. Import the statement or run "
                    "pull_transactions to find it."
                ),
                dedupe_key=f"balance-gap:{earlier.pk}:{later.pk}",
                context={"kind": "ops", "alert": "balance_gap"},
            )
    except IntegrityError:
        return None  # recorded by an earlier scan
    logger.warning("balance gap of %s between %s and %s", gap, earlier.trans_id, later.trans_id)
    return recorded
