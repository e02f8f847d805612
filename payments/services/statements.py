"""Import of the M-Pesa org portal's statement export (CSV or XLSX): the second road for every payment
whose confirmation was lost, at any age.

Exports differ: a few lines about the account come before the header row, header names and date
formats vary, CSV may use ``;`` and XLSX carries real dates and numbers. Headers are matched loosely
(case, spacing and punctuation ignored, known variants accepted). Only completed pay-ins are
payments; the rest is ignored. A receipt the system has is compared (amount, time) and a difference
reported, never changed; a missing one is stored by ``transaction_record_recovered`` (source
``statement``), so importing the same file again changes nothing.
"""

import csv
import datetime
import logging
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.db import transaction

from core.dates import NAIROBI
from core.exceptions import InvalidInput
from payments.codes import is_trans_id
from payments.models import MpesaConfiguration, MpesaTransaction
from payments.parsing import MalformedCallback, recovered_payload
from payments.services.recovery import transaction_record_recovered

logger = logging.getLogger(__name__)

# Each column the import reads, and the header names exports use for it (compared without case,
# spaces or punctuation: "A/C No." is "acno").
COLUMNS: dict[str, tuple[str, ...]] = {
    "receipt": ("receiptno", "receiptnumber", "receipt", "mpesareceipt", "mpesareceiptno", "transactionid"),
    "completed_at": (
        "completiontime",
        "completedtime",
        "completiondate",
        "completiondatetime",
        "transactiondate",
    ),
    "initiated_at": (
        "initiationtime",
        "initiationdate",
        "initiatedtime",
        "date",
        "datetime",
        "transactiontime",
    ),
    "details": ("details", "description", "transactiondetails", "narrative"),
    "status": ("transactionstatus", "status"),
    "paid_in": ("paidin", "paidinkes", "paidinksh", "moneyin", "credit", "amountin"),
    "withdrawn": ("withdrawn", "withdrawnkes", "withdrawnksh", "withdrawal", "paidout", "moneyout", "debit"),
    "balance": ("balance", "balancekes", "balanceksh"),
    "other_party": ("otherpartyinfo", "otherparty", "otherpartyinformation", "otherpartydetails"),
    "account": ("acno", "accountno", "accountnumber", "acnumber", "billreference", "billrefnumber"),
}
_HEADER_OF = {name: column for column, names in COLUMNS.items() for name in names}
# The header row is looked for among the first rows (the account summary comes first).
HEADER_SEARCH_ROWS = 40
BATCH = 2000
# A statement's time may be rounded to the minute; anything further apart is a difference.
TIME_TOLERANCE = datetime.timedelta(minutes=1)
# Pay-ins that are not customers paying: moving money between the organisation's own accounts,
# reversals, charges refunded.
NOT_A_CUSTOMER_PAYMENT = ("transfer", "reversal", "charge")
TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %I:%M:%S %p",
    "%d/%m/%Y %I:%M %p",
    "%Y/%m/%d %H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
    "%d %b %Y %H:%M:%S",
    "%d-%b-%Y %H:%M:%S",
    "%d %B %Y %H:%M:%S",
)
_ACCOUNT_IN_DETAILS = re.compile(r"\bAcc(?:ount)?\.?\s*(?:No\.?)?\s*[:\-]?\s*(\S+)", re.IGNORECASE)
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_ZIP, _OLE = b"PK\x03\x04", b"\xd0\xcf\x11\xe0"


class NotAStatement(InvalidInput):
    """The file is not an M-Pesa statement export."""


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

    def summary(self) -> str:
        return (
            f"read {self.read} known {self.known} created {self.created} mismatched {self.mismatched} "
            f"ignored {self.ignored} errors {self.errors}"
        )


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    trans_id: str
    completed_at: datetime.datetime
    paid_in: Decimal
    balance: Decimal | None
    other_party: str
    account: str
    evidence: dict[str, str]


# --- Reading ----------------------------------------------------------------------------------------


def _xlsx_rows(path: Path, name: str) -> Iterator[tuple[Any, ...]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        # read_only streams rows instead of loading the whole sheet; data_only reads cached values.
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise NotAStatement(f"{name} is not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        # The statement is the first sheet; others hold summaries.
        yield from workbook.worksheets[0].iter_rows(values_only=True)
    finally:
        workbook.close()


def _csv_rows(path: Path, head: bytes) -> Iterator[list[str]]:
    try:
        head.decode("utf-8")
        encoding = "utf-8-sig"
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still UTF-8.
        encoding = "utf-8-sig" if exc.start >= len(head) - 3 else "cp1252"
    sample = head.decode(encoding, errors="replace")
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        yield from csv.reader(handle, dialect)


def _rows(path: Path, name: str) -> Iterator[tuple[Any, ...] | list[str]]:
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    if head.startswith(_ZIP):
        return _xlsx_rows(path, name)
    if head.startswith(_OLE):
        raise NotAStatement(f"{name} is an old Excel (XLS) file: export the statement as CSV or XLSX")
    if b"\x00" in head:
        raise NotAStatement(f"{name} is not a statement: it is neither CSV nor XLSX")
    return _csv_rows(path, head)


def _header_key(value: object) -> str:
    return _NOT_ALNUM.sub("", str(value or "").lower())


def _columns(header: Iterable[object]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        column = _HEADER_OF.get(_header_key(name))
        if column is not None and column not in found:
            found[column] = index
    if "completed_at" not in found and "initiated_at" in found:
        found["completed_at"] = found["initiated_at"]
    return found


def _is_header(columns: dict[str, int]) -> bool:
    return all(name in columns for name in ("receipt", "completed_at", "paid_in"))


# --- Values -----------------------------------------------------------------------------------------


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _money(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # XLSX numbers are floats: their shortest repr is the amount as typed.
        return Decimal(repr(value))
    text = (
        str(value).strip().replace(",", "").replace(" ", "").upper().removeprefix("KES").removeprefix("KSH")
    )
    if text in ("", "-"):
        return None
    negative = text.startswith("(") and text.endswith(")")
    try:
        amount = Decimal(text.strip("()"))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount")
    # Not rounded: an amount with more than two decimals is an error (recovered_payload says so).
    return -amount if negative else amount


def _balance(value: object) -> Decimal | None:
    # Informational (balance gaps): an unreadable balance never costs a payment.
    try:
        return _money(value)
    except ValueError:
        return None


class _Times:
    """Statement times in any of ``TIME_FORMATS``; the format that worked last is tried first (one
    file uses one format, and 100,000 rows each trying a dozen formats is most of an import)."""

    def __init__(self) -> None:
        self.formats = list(TIME_FORMATS)

    def parse(self, value: object) -> datetime.datetime:
        if isinstance(value, datetime.datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=NAIROBI)
        text = " ".join(str(value or "").split())
        for position, time_format in enumerate(self.formats):
            try:
                parsed = datetime.datetime.strptime(text, time_format)  # noqa: DTZ007 - Nairobi, below
            except ValueError:
                continue
            if position:
                self.formats.insert(0, self.formats.pop(position))
            return parsed.replace(tzinfo=NAIROBI)
        raise ValueError(f"{text!r} is not a date and time this import knows")


def _payer(other_party: str) -> tuple[str, str]:
    """``(msisdn, names)`` from ``"254712345678 - JANE DOE"`` (the number possibly masked)."""
    number, separator, names = other_party.partition(" - ")
    if separator:
        return number.strip(), names.strip()
    compact = other_party.replace(" ", "")
    if compact and compact.replace("*", "").isdigit():
        return compact, ""
    return "", other_party


def _line(
    number: int, row: tuple[Any, ...] | list[str], columns: dict[str, int], times: _Times
) -> _Line | str:
    """The payment on a statement row, or why the row is ignored (``"ignored"``); raises ``ValueError``
    for a pay-in that cannot be read."""

    def cell(name: str) -> object:
        index = columns.get(name)
        return row[index] if index is not None and index < len(row) else None

    status = _text(cell("status")).lower()
    if "status" in columns and status != "completed":
        return "ignored"
    paid_in = _money(cell("paid_in"))
    if paid_in is None or paid_in <= 0:
        return "ignored"
    details = _text(cell("details"))
    if any(word in details.lower() for word in NOT_A_CUSTOMER_PAYMENT):
        return "ignored"
    trans_id = _text(cell("receipt")).upper()
    if not is_trans_id(trans_id):
        raise ValueError(f"{trans_id!r} is not an M-Pesa receipt number")
    account = _text(cell("account"))
    if not account and (found := _ACCOUNT_IN_DETAILS.search(details)):
        account = found.group(1)
    return _Line(
        number=number,
        trans_id=trans_id,
        completed_at=times.parse(cell("completed_at")),
        paid_in=paid_in,
        balance=_balance(cell("balance")),
        other_party=_text(cell("other_party")),
        account=account,
        evidence={name: _text(cell(name)) for name in columns},
    )


# --- Import -----------------------------------------------------------------------------------------


def _store(lines: list[_Line], config: MpesaConfiguration, result: StatementResult) -> None:
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
            msisdn, names = _payer(line.other_party)
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
    naming its line. ``progress`` is called now and then with the number of rows read since its
    last call. Raises ``NotAStatement`` for a file that is not a statement (nothing is stored)."""
    name = name or path.name
    result = StatementResult()
    times = _Times()
    columns: dict[str, int] | None = None
    batch: list[_Line] = []
    reported = 0
    for number, row in enumerate(_rows(path, name), start=1):
        if columns is None:
            candidate = _columns(row)
            if _is_header(candidate):
                columns = candidate
            elif number >= HEADER_SEARCH_ROWS:
                break
            continue
        if not any(_text(value) for value in row):
            continue
        result.read += 1
        try:
            line = _line(number, row, columns, times)
        except ValueError as exc:
            result.errors += 1
            result.problems.append(f"line {number}: {exc}")
            continue
        if isinstance(line, str):
            result.ignored += 1
        else:
            batch.append(line)
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
