"""Importing a loan book from CSV (``manage.py import_loans``): check every row, then write it all at once.

Borrowers are matched by phone number and loans by loan number, so re-importing a file changes
nothing. Everything is read and written in bulk (a few queries per thousand rows): a 100,000-row
book imports in well under a minute on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import TextIO

from django.db import IntegrityError, transaction
from tqdm import tqdm

from core.actors import Actor
from core.exceptions import ImportFailed
from core.phones import mask_phone
from core.services.imports.parsing import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    _count_lines,
    _Errors,
    _read_header,
    _read_records,
    _Row,
    _RowParser,
)
from core.services.imports.reading import DATABASE_CHANGED, _Book, _plan_borrowers
from core.services.imports.writing import ImportResult, _write

__all__ = ["OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "ImportResult", "loan_import_csv"]

_PROGRESS_MIN_ROWS = 1000


def loan_import_csv(*, file: TextIO, actor: Actor, progress: bool = False) -> ImportResult:
    """Import borrowers and loans from a CSV loan book (header row first; amounts are outstanding).

    Every row is checked before anything is written; then borrowers, phones, loans and one audit
    event per created or changed loan are written in one transaction. Returns the counts. Raises
    ``ImportFailed`` listing every problem by line number (line 1 is the header) when any row is
    bad, in which case nothing is written. When a row gives no status, a loan is ``paid`` if
    nothing is outstanding, else ``active`` (an existing written-off loan stays written off). A
    loan with a posting here that is not reversed keeps its balances, status and paid_at whatever
    its row says (counted in ``loans_balances_kept``); its other fields still follow the file.
    The rows to update are locked and read again inside the transaction, so a repayment posted
    while the file is being checked is never overwritten.
    """
    errors = _Errors()
    lines = _count_lines(file) if progress else None
    records = _read_records(file)
    header = next(records, None)
    if header is None:
        raise ImportFailed(["line 1: the file is empty"])
    columns, unnamed = _read_header(header, errors)
    if any(name not in columns for name in REQUIRED_COLUMNS):
        raise ImportFailed(errors.as_list())
    parser = _RowParser(columns, unnamed, len(header), errors)
    rows: list[_Row] = []
    first_line_of_loan: dict[str, int] = {}
    first_name_of_phone: dict[str, tuple[int, str]] = {}
    checking = tqdm(
        records,
        desc="checking",
        unit=" rows",
        total=lines and lines - 1,
        disable=not (lines and lines - 1 > _PROGRESS_MIN_ROWS),
    )
    for line, cells in enumerate(checking, start=2):
        row = parser.parse(line, cells)
        if row is None:
            continue
        first_line = first_line_of_loan.setdefault(row.loan_number, line)
        if row.loan_number and first_line != line:
            errors.add(line, f"loan number {row.loan_number!r} is also on line {first_line}")
        if row.phone and row.borrower_name:
            _check_same_borrower_name(row, first_name_of_phone, errors)
        rows.append(row)
    checking.close()

    book = _Book.load(rows)
    plans, borrower_key_of_phone = _plan_borrowers(rows, book, errors)
    for row in rows:
        if row.officer in book.not_officers:
            errors.add(row.line, f"officer {row.officer!r} is not an active member of staff")
        elif row.officer and row.officer not in book.officer_ids:
            errors.add(row.line, f"unknown officer {row.officer!r}")
    if errors:
        raise ImportFailed(errors.as_list())

    try:
        with transaction.atomic():
            result = _write(
                rows=rows,
                plans=plans,
                borrower_key_of_phone=borrower_key_of_phone,
                book=book,
                actor=actor,
                data_rows=parser.data_rows,
                show_progress=progress and len(rows) > _PROGRESS_MIN_ROWS,
            )
    except IntegrityError:
        # Another writer took a phone, national ID or loan number between our reads and writes.
        raise ImportFailed([DATABASE_CHANGED]) from None
    return result


def _check_same_borrower_name(
    row: _Row, first_name_of_phone: dict[str, tuple[int, str]], errors: _Errors
) -> None:
    # One phone is one borrower: two names for it is a typo or two people sharing a phone, and
    # either way the lender must decide whose loans these are.
    first_line, first_name = first_name_of_phone.setdefault(row.phone, (row.line, row.borrower_name))
    if first_line != row.line and _name_key(row.borrower_name) != _name_key(first_name):
        errors.add(
            row.line,
            f"phone {mask_phone(row.phone)!r} has borrower_name {row.borrower_name!r} here "
            f"but {first_name!r} on line {first_line}",
        )


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()
