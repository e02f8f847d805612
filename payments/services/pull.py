"""Pull Transactions: ask Daraja which C2B payments the paybill received in a recent window, and
store any the system never heard of (their confirmation was lost; Daraja does not retry it).

Run by Celery beat every ``MPESA_PULL_INTERVAL_MINUTES`` over the last ``MPESA_PULL_HOURS`` and by
``manage.py pull_transactions``. Daraja answers ``1001`` both when there is nothing and when Pull
Transactions is not provisioned for the short code: a paybill whose callbacks bring payments while
pulls keep answering ``1001`` is alerted once per such episode.
"""

import datetime
import logging
from dataclasses import dataclass
from typing import Any

from django.db import DataError
from django.utils import timezone

from core.dates import NAIROBI
from core.exceptions import InvalidAmount, InvalidInput
from core.money import to_money
from core.services.outbox import outbox_queue_for_staff, staff_to_alert
from payments.clients.daraja import PULL_NO_TRANSACTIONS, PULL_OK, DarajaClient, DarajaError
from payments.models import MpesaConfiguration, MpesaTransaction
from payments.parsing import C2BPayload, MalformedCallback, recovered_payload
from payments.services.reconciliation import balance_gaps_find
from payments.services.recovery import transaction_record_recovered

logger = logging.getLogger(__name__)

# Daraja keeps 48 hours for Pull Transactions.
MAX_HOURS = 48
# A bound on one sync, far above a paybill's two hours, so a provider that never stops paging cannot
# keep a worker forever.
MAX_PAGES = 500


@dataclass(frozen=True, slots=True)
class PullResult:
    fetched: int
    known: int
    created: int
    errors: int
    code: str
    message: str
    gaps: int = 0  # balance gaps found by the scan after the pull

    def summary(self) -> str:
        return (
            f"fetched {self.fetched} known {self.known} created {self.created}"
            + (f" errors {self.errors}" if self.errors else "")
            + (f" balance gaps {self.gaps}" if self.gaps else "")
        )


def _row_time(raw: object) -> datetime.datetime:
    # Daraja writes trxDate as ISO 8601, in UTC with a Z; a time without a zone is Nairobi's.
    when = datetime.datetime.fromisoformat(str(raw).strip())
    return when if when.tzinfo is not None else when.replace(tzinfo=NAIROBI)


def pull_row_payload(row: dict[str, Any], config: MpesaConfiguration) -> C2BPayload:
    """The payment a Pull Transactions row describes. Raises ``MalformedCallback`` for a row that
    is not a readable payment."""
    try:
        trans_time = _row_time(row.get("trxDate"))
        amount = to_money(str(row.get("amount", "")).strip())
    except (ValueError, InvalidAmount) as exc:
        raise MalformedCallback(f"pull row {row.get('transactionId')!r}: {exc}") from None
    return recovered_payload(
        trans_id=str(row.get("transactionId") or ""),
        trans_time=trans_time,
        amount=amount,
        business_short_code=config.business_short_code,
        bill_reference=str(row.get("billreference") or ""),
        msisdn=str(row.get("msisdn") or ""),
        transaction_type="Pay Bill",
    )


def _receiving_callbacks(config: MpesaConfiguration, since: datetime.datetime) -> bool:
    return MpesaTransaction.objects.filter(
        config=config, source=MpesaTransaction.Source.CALLBACK, received_at__gte=since
    ).exists()


def _record_pull(config: MpesaConfiguration, *, code: str, message: str, start: datetime.datetime) -> None:
    """Keep the last pull's outcome on the configuration and alert once when a paybill that is
    receiving callbacks keeps answering 1001 (Pull Transactions probably not provisioned)."""
    now = timezone.now()
    silent_since = config.pull_silent_since
    if code == PULL_OK:
        silent_since = None
    elif code == PULL_NO_TRANSACTIONS and silent_since is None and _receiving_callbacks(config, start):
        silent_since = now
        outbox_queue_for_staff(
            users=staff_to_alert(),
            body=(
                f"Pull Transactions answers 1001 (nothing) for paybill {config.business_short_code} "
                "although payments arrive by callback: it may not be provisioned, so lost callbacks "
                "are not being recovered. Ask Safaricom to enable Pull Transactions."
            ),
            dedupe_key=f"pull-1001:{config.pk}:{now.isoformat()}",
            context={"kind": "ops", "alert": "pull_1001"},
        )
    MpesaConfiguration.objects.filter(pk=config.pk).update(
        last_pull_at=now, last_pull_code=code, last_pull_message=message[:500], pull_silent_since=silent_since
    )
    config.last_pull_at, config.last_pull_code, config.last_pull_message = now, code, message[:500]
    config.pull_silent_since = silent_since


def mpesa_pull_transactions(
    *,
    config: MpesaConfiguration,
    hours: float = 2,
    now: datetime.datetime | None = None,
    client: DarajaClient | None = None,
) -> PullResult:
    """Fetch every page of the C2B payments ``config``'s paybill received in the last ``hours``
    (at most 48) and store those the system lacks (source ``pull``); they are then matched and
    posted like any payment. Keeps the outcome on the configuration (``last_pull_*``), then looks
    for balance gaps (``balance_gaps_find``), after a refused pull too.

    Returns the counts. Raises ``InvalidInput`` for a window Daraja would refuse and ``DarajaError``
    (after recording it as the last pull) when Daraja refuses or cannot be reached."""
    if not 0 < hours <= MAX_HOURS:
        raise InvalidInput(f"Pull Transactions looks back at most {MAX_HOURS} hours, not {hours}")
    end = (now or timezone.now()).replace(microsecond=0)
    start = end - datetime.timedelta(hours=hours)
    own_client = client is None
    daraja = client or DarajaClient.for_config(config)
    fetched = known = created = errors = 0
    code = message = ""
    try:
        for _ in range(MAX_PAGES):
            page = daraja.pull_transactions_query(
                short_code=config.business_short_code, start=start, end=end, offset=fetched
            )
            if not code or page.response_code == PULL_OK:
                code, message = page.response_code, page.description
            if page.nothing_returned or not page.transactions:
                break
            fetched += len(page.transactions)
            for row in page.transactions:
                try:
                    stored = transaction_record_recovered(
                        config=config,
                        payload=pull_row_payload(row, config),
                        source=MpesaTransaction.Source.PULL,
                        evidence=row,
                    )
                except (MalformedCallback, DataError) as exc:
                    errors += 1
                    logger.warning("pull row not stored: %s", exc)
                    continue
                created += stored
                known += not stored
    except DarajaError as exc:
        _record_pull(config, code=exc.code or "error", message=exc.detail, start=start)
        # The balances the callbacks brought still show money the system never saw.
        balance_gaps_find(config=config)
        raise
    finally:
        if own_client:
            daraja.close()
    _record_pull(config, code=code, message=message, start=start)
    # After the pull, so that a gap it has just filled is not reported.
    gaps = balance_gaps_find(config=config)
    result = PullResult(fetched, known, created, errors, code, message, len(gaps))
    logger.info("pull %s: %s (code %s)", config.business_short_code, result.summary(), code)
    return result
