"""What the database already holds for the rows of a file, read in bulk, and the borrowers the rows make."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from django.db import models

from core.exceptions import ImportFailed
from core.models import Borrower, BorrowerPhone, Loan, Repayment, User
from core.phones import mask_phone
from core.services.imports.parsing import _PARTS, _BorrowerPlan, _Errors, _Row

# SQLite refuses statements with more than 999 parameters.
_IN_CHUNK = 900

T = TypeVar("T")

DATABASE_CHANGED = "the database changed while the file was being imported; nothing was imported, try again"

_BORROWER_COLUMNS = ("id", "full_name", "national_id", "preferred_language", "loan_officer_id")
_LOAN_COLUMNS = (
    "id",
    "borrower_id",
    "loan_officer_id",
    "status",
    "paid_at",
    "principal_disbursed",
    *_PARTS,
    "disbursed_on",
    "due_date",
)


@dataclass(slots=True)
class _Book:
    """What the database already holds for the rows of the file, read in bulk. Borrowers and
    loans are kept as tuples in ``_BORROWER_COLUMNS`` / ``_LOAN_COLUMNS`` order: a model instance
    per row would cost ten times the memory."""

    officer_ids: dict[str, int]  # the usernames in the file that can be given loans
    not_officers: set[str]  # usernames in the file of users who cannot (inactive, or not staff)
    borrower_id_of_phone: dict[str, int]
    borrowers: dict[int, tuple]
    owner_of_national_id: dict[str, int]
    loans: dict[str, tuple]
    loans_with_postings: set[int]  # ids of the loans whose balances this system owns

    @classmethod
    def load(cls, rows: list[_Row]) -> _Book:
        usernames = {row.officer for row in rows if row.officer}
        officer_ids: dict[str, int] = {}
        not_officers: set[str] = set()
        for username, user_id, is_active, is_staff, role in _chunked(
            User, "username", usernames, "id", "is_active", "is_staff", "role"
        ):
            if is_active and (is_staff or role == User.Role.ADMIN):
                officer_ids[username] = user_id
            else:
                not_officers.add(username)
        borrower_id_of_phone = dict(
            _chunked(BorrowerPhone, "number", {row.phone for row in rows}, "borrower_id")
        )
        national_ids = {row.national_id for row in rows if row.national_id}
        loans = {
            loan_number: tuple(values)
            for loan_number, *values in _chunked(
                Loan, "loan_number", {row.loan_number for row in rows}, *_LOAN_COLUMNS
            )
        }
        return cls(
            officer_ids=officer_ids,
            not_officers=not_officers,
            borrower_id_of_phone=borrower_id_of_phone,
            borrowers={
                borrower_id: tuple(values)
                for borrower_id, *values in _chunked(
                    Borrower, "id", set(borrower_id_of_phone.values()), *_BORROWER_COLUMNS
                )
            },
            owner_of_national_id=dict(_chunked(Borrower, "national_id", national_ids, "id")),
            loans=loans,
            loans_with_postings=_loans_with_postings([values[0] for values in loans.values()]),
        )

    def lock_and_refresh(self, *, borrower_ids: list[int], loan_numbers: list[str]) -> None:
        """Lock these borrowers, then these loans (each in id order: the project's lock order), and
        replace what was read of them before with what they hold now. Call inside a transaction.

        Raises ``ImportFailed`` when one of them has been deleted or renumbered since the first read.
        """
        # Each fresh row replaces the stale one as it arrives: holding both for a whole book would
        # double the memory an import needs.
        borrowers_read = 0
        for borrower_id, *values in _locked(Borrower, borrower_ids, "id", *_BORROWER_COLUMNS):
            self.borrowers[borrower_id] = tuple(values)
            borrowers_read += 1
        loan_ids = [self.loans[loan_number][0] for loan_number in loan_numbers]
        expected = set(loan_numbers)
        loans_read = 0
        for loan_number, *values in _locked(Loan, loan_ids, "loan_number", *_LOAN_COLUMNS):
            if loan_number not in expected:
                raise ImportFailed([DATABASE_CHANGED])  # renumbered since the first read
            self.loans[loan_number] = tuple(values)
            loans_read += 1
        if borrowers_read != len(borrower_ids) or loans_read != len(loan_ids):
            raise ImportFailed([DATABASE_CHANGED])  # deleted since the first read
        # A separate statement, run once the locks are held, so that it sees every posting committed
        # before them (in PostgreSQL a statement that waited for a lock still reads its own snapshot).
        # No posting can be added to or reversed on these loans until the import commits.
        self.loans_with_postings.difference_update(loan_ids)
        self.loans_with_postings.update(_loans_with_postings(loan_ids))


def _loans_with_postings(loan_ids: list[int]) -> set[int]:
    """The ids among ``loan_ids`` of the loans with at least one posting that is not reversed."""
    posted: set[int] = set()
    for batch in _batches(sorted(loan_ids), _IN_CHUNK):
        posted.update(
            Repayment.objects.filter(
                loan_id__in=batch, kind=Repayment.Kind.POSTING, reversal__isnull=True
            ).values_list("loan_id", flat=True)
        )
    return posted


def _chunked(model: type[models.Model], field: str, values: set, *columns: str) -> Iterator[tuple]:
    """``(field, *columns)`` for the rows whose ``field`` is in ``values``, a few hundred per query."""
    ordered = sorted(values)
    for batch in _batches(ordered, _IN_CHUNK):
        yield from model._default_manager.filter(**{f"{field}__in": batch}).values_list(field, *columns)


def _locked(model: type[models.Model], ids: list[int], *columns: str) -> Iterator[tuple]:
    """``columns`` of the rows with these ids, locking them in ascending id order across all batches
    (PostgreSQL locks the rows of ``ORDER BY ... FOR UPDATE`` in that order)."""
    for batch in _batches(sorted(ids), _IN_CHUNK):
        yield from (
            model._default_manager.select_for_update()
            .filter(pk__in=batch)
            .order_by("pk")
            .values_list(*columns)
        )


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _plan_borrowers(
    rows: list[_Row], book: _Book, errors: _Errors
) -> tuple[dict[int | str, _BorrowerPlan], dict[str, int | str]]:
    """Group rows by borrower (an existing one found by any of its phones, or a new one per phone)
    and check national IDs: one per borrower, never someone else's."""
    plans: dict[int | str, _BorrowerPlan] = {}
    key_of_phone: dict[str, int | str] = {}
    national_id_seen: dict[str, tuple[int | str, int]] = {}
    borrower_national_id: dict[int | str, tuple[str, int]] = {}
    for row in rows:
        if not row.phone:
            continue  # its phone is wrong, and that is already reported
        key = book.borrower_id_of_phone.get(row.phone, row.phone)
        key_of_phone[row.phone] = key
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = _BorrowerPlan(key=key, full_name=row.borrower_name)
        plan.language = plan.language or row.language
        plan.officer = plan.officer or row.officer
        if not row.national_id:
            continue
        plan.national_id = plan.national_id or row.national_id
        owner = book.owner_of_national_id.get(row.national_id)
        if owner is not None and owner != key:
            errors.add(row.line, f"national_id {row.national_id!r} belongs to another borrower")
        other_key, other_line = national_id_seen.setdefault(row.national_id, (key, row.line))
        if other_key != key:
            errors.add(
                row.line,
                f"national_id {row.national_id!r} is also given to a different phone on line {other_line}",
            )
        first_id, first_line = borrower_national_id.setdefault(key, (row.national_id, row.line))
        if first_id != row.national_id:
            errors.add(
                row.line,
                f"phone {mask_phone(row.phone)!r} has national_id {row.national_id!r} here "
                f"but {first_id!r} on line {first_line}",
            )
    return plans, key_of_phone
