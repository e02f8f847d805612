"""Import of the M-Pesa org portal's statement export (CSV or XLSX): the second road for every payment
whose confirmation was lost, at any age.

Exports differ: a few lines about the account come before the header row, header names and date
formats vary, CSV may use ``;`` and XLSX carries real dates and numbers. Headers are matched loosely
(case, spacing and punctuation ignored, known variants accepted). Only completed pay-ins are
payments; the rest is ignored. A receipt the system has is compared (amount, time) and a difference
reported, never changed; a missing one is stored by ``transaction_record_recovered`` (source
``statement``), so importing the same file again changes nothing. Each import ends with a balance
gap scan from the statement's first payment on.
"""

import datetime
import logging
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from core.dates import NAIROBI
from payments.models import BalanceGap, MpesaConfiguration, MpesaTransaction
from payments.parsing import MalformedCallback, recovered_payload
from payments.services.reconciliation import SCAN_DAYS, balance_gaps_find
from payments.services.recovery import transaction_record_recovered
from payments.services.statements.reading import (
    HEADER_SEARCH_ROWS,
    NotAStatement,
    StatementLine,
    StatementTimes,
    cell_text,
    file_rows,
    header_columns,
    is_header,
    payer_parts,
    statement_line,
)

logger = logging.getLogger(__name__)

BATCH = 2000
# A statement's time may be rounded to the minute; anything further apart is a difference.
TIME_TOLERANCE = datetime.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Mismatch:
    line: int
    trans_id: str
    statement_amount: Decimal
    system_amount: Decimal
    statement_time: datetime.datetime
    system_time: datetime.datetime

    def __str__(self) -> str:
        parts = []
        if self.statement_amount != self.system_amount:
            parts.append(f"amount {self.statement_amount} on the statement, {self.system_amount} here")
        if abs(self.statement_time - self.system_time) > TIME_TOLERANCE:
            parts.append(
                f"time {self.statement_time.astimezone(NAIROBI):%Y-%m-%d %H:%M:%S} on the statement, "
                f"{self.system_time.astimezone(NAIROBI):%Y-%m-%d %H:%M:%S} here"
            )
        return f"line {self.line}: {self.trans_id}: " + "; ".join(parts)


@dataclass(slots=True)
class StatementResult:
    read: int = 0
    known: int = 0
    created: int = 0
    mismatched: int = 0
    ignored: int = 0
    errors: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "line N: why", one per error
    gaps: list[BalanceGap] = field(default_factory=list)  # found by the scan after the import

    def summary(self) -> str:
        return (
            f"read {self.read} known {self.known} created {self.created} mismatched {self.mismatched} "
            f"ignored {self.ignored} errors {self.errors}"
        )


# --- Import -----------------------------------------------------------------------------------------


def _store(lines: list[StatementLine], config: MpesaConfiguration, result: StatementResult) -> None:
    """Compare a batch of statement payments with the books and store the missing ones."""
    existing = {
        trans_id: (amount, trans_time)
        for trans_id, amount, trans_time in MpesaTransaction.objects.filter(
            trans_id__in={line.trans_id for line in lines}
        ).values_list("trans_id", "amount", "trans_time")
    }
    with transaction.atomic():
        for line in lines:
            if line.trans_id in existing:
                amount, trans_time = existing[line.trans_id]
                if amount != line.paid_in or abs(trans_time - line.completed_at) > TIME_TOLERANCE:
                    result.mismatched += 1
                    result.mismatches.append(
                        Mismatch(
                            line.number, line.trans_id, line.paid_in, amount, line.completed_at, trans_time
                        )
                    )
                else:
                    result.known += 1
                continue
            msisdn, names = payer_parts(line.other_party)
            try:
                payload = recovered_payload(
                    trans_id=line.trans_id,
                    trans_time=line.completed_at,
                    amount=line.paid_in,
                    business_short_code=config.business_short_code,
                    bill_reference=line.account,
                    msisdn=msisdn,
                    names=names,
                    # The statement's running balance is the paybill's balance after the payment,
                    # as OrgAccountBalance is: balance gaps read both.
                    org_account_balance=line.balance,
                )
                created = transaction_record_recovered(
                    config=config,
                    payload=payload,
                    source=MpesaTransaction.Source.STATEMENT,
                    evidence={"line": line.number, **line.evidence},
                )
            except MalformedCallback as exc:
                result.errors += 1
                result.problems.append(f"line {line.number}: {exc}")
                continue
            existing[line.trans_id] = (line.paid_in, line.completed_at)
            if created:
                result.created += 1
            else:
                result.known += 1  # stored meanwhile by its confirmation or a pull


def statement_import(
    *,
    path: Path,
    config: MpesaConfiguration,
    name: str = "",
    progress: Callable[[int], None] | None = None,
) -> StatementResult:
    """Import the statement export at ``path`` (CSV or XLSX; ``name`` is what messages call it) for
    ``config``'s paybill.

    Returns the counts (``read`` rows after the header; each is ``known``, ``created``,
    ``mismatched``, ``ignored`` or an ``error``) with the differences found and the errors, each
    naming its line, and the balance gaps the scan after it found (``balance_gaps_find``, from the
    statement's first payment or the last three days, whichever is earlier). ``progress`` is called
    now and then with the number of rows read since its last call. Raises ``NotAStatement`` for a
    file that is not a statement (nothing is stored)."""
    name = name or path.name
    result = StatementResult()
    times = StatementTimes()
    columns: dict[str, int] | None = None
    batch: list[StatementLine] = []
    earliest = timezone.now() - datetime.timedelta(days=SCAN_DAYS)
    reported = 0
    for number, row in enumerate(file_rows(path, name), start=1):
        if columns is None:
            candidate = header_columns(row)
            if is_header(candidate):
                columns = candidate
            elif number >= HEADER_SEARCH_ROWS:
                break
            continue
        if not any(cell_text(value) for value in row):
            continue
        result.read += 1
        try:
            line = statement_line(number, row, columns, times)
        except ValueError as exc:
            result.errors += 1
            result.problems.append(f"line {number}: {exc}")
            continue
        if isinstance(line, str):
            result.ignored += 1
        else:
            batch.append(line)
            earliest = min(earliest, line.completed_at)
        if len(batch) >= BATCH:
            _store(batch, config, result)
            batch = []
        if progress is not None and result.read - reported >= 1000:
            progress(result.read - reported)
            reported = result.read
    if columns is None:
        raise NotAStatement(
            f"{name} is not an M-Pesa statement: no header row with Receipt No., Completion Time "
            "and Paid In in its first rows"
        )
    if batch:
        _store(batch, config, result)
    if progress is not None:
        progress(result.read - reported)
    # A statement can reach further back than the scheduled scans: its payments' balances are read
    # from its first one on, which also resolves the gaps its payments explain.
    result.gaps = balance_gaps_find(config=config, since=earliest)
    logger.info("statement %s for %s: %s", name, config.business_short_code, result.summary())
    return result


def statement_import_upload(
    *, chunks: Iterable[bytes], name: str, config: MpesaConfiguration
) -> StatementResult:
    """``statement_import`` of an uploaded file (its ``chunks``; ``name`` as the person's computer
    called it), kept in a temporary file while it is read."""
    suffix = Path(name).suffix[:10]
    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        for chunk in chunks:
            handle.write(chunk)
        handle.flush()
        return statement_import(path=Path(handle.name), config=config, name=Path(name).name)


__all__ = ["Mismatch", "NotAStatement", "StatementResult", "statement_import", "statement_import_upload"]
