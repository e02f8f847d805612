"""Reading the CSV text and checking each row on its own: the columns, the header, one ``_Row`` per line."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TextIO

from django.db import models

from core.exceptions import ImportFailed, InvalidAmount, InvalidPhoneNumber
from core.models import Borrower, Language, Loan
from core.money import DECIMAL_PLACES, MAX_DIGITS, ZERO, to_money
from core.phones import normalize_phone

REQUIRED_COLUMNS = ("loan_number", "borrower_name", "phone", "principal", "due_date")
OPTIONAL_COLUMNS = (
    "national_id",
    "interest",
    "fees",
    "penalties",
    "principal_disbursed",
    "disbursed_on",
    "officer",
    "status",
    "language",
)
_PARTS = ("penalties", "fees", "interest", "principal")
_LANGUAGES = {
    "en": Language.ENGLISH,
    "english": Language.ENGLISH,
    "sw": Language.KISWAHILI,
    "kiswahili": Language.KISWAHILI,
    "swahili": Language.KISWAHILI,
}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Each part fits a MoneyField, but their sum (the audit event's amount) must fit one too.
_MAX_OUTSTANDING = Decimal(10) ** (MAX_DIGITS - DECIMAL_PLACES)


def _max_length(model: type[models.Model], name: str) -> int:
    max_length = getattr(model._meta.get_field(name), "max_length", None)
    if not isinstance(max_length, int):
        raise TypeError(f"{model.__name__}.{name} has no max_length")
    return max_length


_MAX_LENGTH = {
    "loan_number": _max_length(Loan, "loan_number"),
    "borrower_name": _max_length(Borrower, "full_name"),
    "national_id": _max_length(Borrower, "national_id"),
}


@dataclass(slots=True)
class _Row:
    line: int
    loan_number: str
    borrower_name: str
    phone: str  # E.164
    national_id: str | None
    language: str | None
    officer: str | None  # a username
    penalties: Decimal
    fees: Decimal
    interest: Decimal
    principal: Decimal
    principal_disbursed: Decimal | None
    disbursed_on: date | None
    due_date: date | None  # None only on a row with errors, and then nothing is written
    status: str | None

    @property
    def outstanding(self) -> Decimal:
        return self.penalties + self.fees + self.interest + self.principal


@dataclass(slots=True)
class _BorrowerPlan:
    """What the file says about one borrower: the first row's name, and the first value given
    for each optional field."""

    key: int | str  # the existing borrower's id, or the phone number of a borrower to create
    full_name: str
    national_id: str | None = None
    language: str | None = None
    officer: str | None = None


class _Errors:
    def __init__(self) -> None:
        self.items: list[tuple[int, str]] = []

    def add(self, line: int, message: str) -> None:
        self.items.append((line, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def as_list(self) -> list[str]:
        # Stable sort: the problems of one line keep the order of its columns.
        return [f"line {line}: {message}" for line, message in sorted(self.items, key=lambda item: item[0])]


def _count_lines(file: TextIO) -> int | None:
    """The number of lines in ``file`` (for the progress bar), or None when it cannot be re-read."""
    if not file.seekable():
        return None
    start = file.tell()
    count = sum(1 for _ in file)
    file.seek(start)
    return count


def _read_records(file: TextIO) -> Iterator[list[str]]:
    # Records are parsed as they are read: holding the raw file as lists of strings would double
    # the memory an import needs.
    reader = csv.reader(file)
    try:
        yield from reader
    except csv.Error as exc:
        raise ImportFailed([f"line {reader.line_num}: the file is not readable CSV ({exc})"]) from None


def _read_header(header: list[str], errors: _Errors) -> tuple[dict[str, int], list[int]]:
    columns: dict[str, int] = {}
    unnamed: list[int] = []
    known = {*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS}
    for index, raw in enumerate(header):
        # A file saved as UTF-8 with a BOM but opened as plain UTF-8 keeps the BOM on the first name.
        name = raw.replace("\ufeff", "").strip().lower()
        if not name:
            unnamed.append(index)
        elif name not in known:
            errors.add(1, f"unknown column {name!r}")
        elif name in columns:
            errors.add(1, f"column {name!r} appears twice")
        else:
            columns[name] = index
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            errors.add(1, f"missing required column {name!r}")
    return columns, unnamed


class _RowParser:
    """Turns one CSV record into a ``_Row``, recording every problem it finds. Phone numbers,
    amounts and dates repeat a lot in a loan book, so each distinct text is parsed once."""

    def __init__(self, columns: dict[str, int], unnamed: list[int], width: int, errors: _Errors) -> None:
        self.columns = columns
        self.unnamed = unnamed
        self.width = width
        self.errors = errors
        self.data_rows = 0
        self._phones: dict[str, str | InvalidPhoneNumber] = {}
        self._amounts: dict[str, Decimal | InvalidAmount] = {}
        self._dates: dict[str, date | None] = {}

    def parse(self, line: int, cells: list[str]) -> _Row | None:
        """The row (with placeholders where a cell is bad, so the checks across rows still see
        it), or None for a blank line."""
        if not any(cell.strip() for cell in cells):
            return None  # blank lines (often at the end of a spreadsheet export) are not rows
        self.data_rows += 1
        if any(cell.strip() for cell in cells[self.width :]):
            self.errors.add(line, f"has {len(cells)} cells but the header names {self.width} columns")
        for index in self.unnamed:
            if index < len(cells) and cells[index].strip():
                self.errors.add(line, f"column {index + 1} has a value but no name in the header")

        def cell(name: str) -> str:
            index = self.columns.get(name)
            return cells[index].strip() if index is not None and index < len(cells) else ""

        loan_number = self._text(line, "loan_number", cell("loan_number"), required=True)
        borrower_name = self._text(line, "borrower_name", cell("borrower_name"), required=True)
        national_id = self._text(line, "national_id", cell("national_id"), required=False)
        phone = self._phone(line, cell("phone"))
        errors_before_amounts = len(self.errors.items)
        amounts = {
            part: self._amount(line, part, cell(part), required=part == "principal") for part in _PARTS
        }
        # A bad amount stands in as zero, so the outstanding total is only checked when all are good.
        amounts_valid = len(self.errors.items) == errors_before_amounts
        principal_disbursed = self._optional_amount(line, "principal_disbursed", cell("principal_disbursed"))
        due_date = self._date(line, "due_date", cell("due_date"), required=True)
        disbursed_on = self._date(line, "disbursed_on", cell("disbursed_on"), required=False)
        officer = cell("officer") or None
        outstanding = sum(amounts.values(), ZERO)
        if amounts_valid and outstanding >= _MAX_OUTSTANDING:
            self.errors.add(line, f"the outstanding total {outstanding:,.2f} is too large")
        status = self._status(line, cell("status"), outstanding if amounts_valid else None)
        language = self._language(line, cell("language"))
        return _Row(
            line=line,
            loan_number=loan_number,
            borrower_name=borrower_name,
            phone=phone,
            national_id=national_id or None,
            language=language,
            officer=officer,
            penalties=amounts["penalties"],
            fees=amounts["fees"],
            interest=amounts["interest"],
            principal=amounts["principal"],
            principal_disbursed=principal_disbursed,
            disbursed_on=disbursed_on,
            due_date=due_date,
            status=status,
        )

    def _text(self, line: int, column: str, text: str, *, required: bool) -> str:
        if required and not text:
            self.errors.add(line, f"{column} is empty")
        elif len(text) > _MAX_LENGTH[column]:
            self.errors.add(line, f"{column} is longer than {_MAX_LENGTH[column]} characters")
        return text

    def _phone(self, line: int, text: str) -> str:
        if not text:
            self.errors.add(line, "phone is empty")
            return ""
        parsed = self._phones.get(text)
        if parsed is None:
            try:
                parsed = normalize_phone(text)
            except InvalidPhoneNumber as exc:
                parsed = exc
            self._phones[text] = parsed
        if isinstance(parsed, InvalidPhoneNumber):
            # normalize_phone's message already masks the number: "'2547*****678' is not a ...".
            self.errors.add(line, f"phone {parsed.detail}")
            return ""
        return parsed

    def _amount(self, line: int, column: str, text: str, *, required: bool = False) -> Decimal:
        if not text:
            if required:
                self.errors.add(line, f"{column} is empty")
            return ZERO  # an empty optional amount is zero
        parsed = self._amounts.get(text)
        if parsed is None:
            try:
                parsed = to_money(text)
            except InvalidAmount as exc:
                parsed = exc
            self._amounts[text] = parsed
        if isinstance(parsed, InvalidAmount):
            # to_money says "amount '1.234' has more than two decimal places": name the column instead.
            self.errors.add(line, f"{column} {parsed.detail.removeprefix('amount ')}")
            return ZERO
        if parsed < 0:
            self.errors.add(line, f"{column} {text!r} is negative")
            return ZERO
        return parsed

    def _optional_amount(self, line: int, column: str, text: str) -> Decimal | None:
        # principal_disbursed: empty means "not given", not zero.
        return self._amount(line, column, text) if text else None

    def _date(self, line: int, column: str, text: str, *, required: bool) -> date | None:
        if not text:
            if required:
                self.errors.add(line, f"{column} is empty")
            return None
        if text not in self._dates:
            try:
                self._dates[text] = date.fromisoformat(text) if _ISO_DATE.match(text) else None
            except ValueError:
                self._dates[text] = None
        parsed = self._dates[text]
        if parsed is None:
            self.errors.add(line, f"{column} {text!r} is not a date (YYYY-MM-DD)")
        return parsed

    def _status(self, line: int, text: str, outstanding: Decimal | None) -> str | None:
        """The status the row gives (None when blank); ``outstanding`` is None when an amount is bad."""
        if not text:
            return None
        status = text.lower()
        if status not in Loan.Status.values:
            self.errors.add(line, f"status {text!r} is not one of {', '.join(Loan.Status.values)}")
            return None
        if outstanding is None:
            return status
        if status == Loan.Status.PAID and outstanding:
            self.errors.add(line, f"status is paid but {outstanding:.2f} is outstanding")
        elif status == Loan.Status.ACTIVE and not outstanding:
            self.errors.add(line, "status is active but nothing is outstanding")
        return status

    def _language(self, line: int, text: str) -> str | None:
        if not text:
            return None
        language = _LANGUAGES.get(text.lower())
        if language is None:
            self.errors.add(line, f"language {text!r} is not one of en, sw")
        return language
