"""Reading an M-Pesa statement export: rows from CSV or XLSX, the header row found and matched
loosely, and each row turned into the payment it shows (or a reason to ignore it). Pure: no
database."""

import csv
import datetime
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from core.dates import NAIROBI
from core.exceptions import InvalidInput
from payments.codes import is_trans_id

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
class StatementLine:
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


def file_rows(path: Path, name: str) -> Iterator[tuple[Any, ...] | list[str]]:
    """The rows of the export at ``path`` (XLSX by its signature, else CSV), summary lines included.
    Raises ``NotAStatement`` (naming the file ``name``) for a binary that is neither."""
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


def header_columns(header: Iterable[object]) -> dict[str, int]:
    """Which column of ``header`` holds each field of ``COLUMNS`` (the first match wins)."""
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        column = _HEADER_OF.get(_header_key(name))
        if column is not None and column not in found:
            found[column] = index
    if "completed_at" not in found and "initiated_at" in found:
        found["completed_at"] = found["initiated_at"]
    return found


def is_header(columns: dict[str, int]) -> bool:
    """Whether a row's columns make it the statement's header row."""
    return all(name in columns for name in ("receipt", "completed_at", "paid_in"))


# --- Values -----------------------------------------------------------------------------------------


def cell_text(value: object) -> str:
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


class StatementTimes:
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


def payer_parts(other_party: str) -> tuple[str, str]:
    """``(msisdn, names)`` from ``"254712345678 - JANE DOE"`` (the number possibly masked)."""
    number, separator, names = other_party.partition(" - ")
    if separator:
        return number.strip(), names.strip()
    compact = other_party.replace(" ", "")
    if compact and compact.replace("*", "").isdigit():
        return compact, ""
    return "", other_party


def statement_line(
    number: int, row: tuple[Any, ...] | list[str], columns: dict[str, int], times: StatementTimes
) -> StatementLine | str:
    """The payment on a statement row, or why the row is ignored (``"ignored"``); raises ``ValueError``
    for a pay-in that cannot be read."""

    def cell(name: str) -> object:
        index = columns.get(name)
        return row[index] if index is not None and index < len(row) else None

    status = cell_text(cell("status")).lower()
    if "status" in columns and status != "completed":
        return "ignored"
    paid_in = _money(cell("paid_in"))
    if paid_in is None or paid_in <= 0:
        return "ignored"
    details = cell_text(cell("details"))
    if any(word in details.lower() for word in NOT_A_CUSTOMER_PAYMENT):
        return "ignored"
    trans_id = cell_text(cell("receipt")).upper()
    if not is_trans_id(trans_id):
        raise ValueError(f"{trans_id!r} is not an M-Pesa receipt number")
    account = cell_text(cell("account"))
    if not account and (found := _ACCOUNT_IN_DETAILS.search(details)):
        account = found.group(1)
    return StatementLine(
        number=number,
        trans_id=trans_id,
        completed_at=times.parse(cell("completed_at")),
        paid_in=paid_in,
        balance=_balance(cell("balance")),
        other_party=cell_text(cell("other_party")),
        account=account,
        evidence={name: cell_text(cell(name)) for name in columns},
    )
