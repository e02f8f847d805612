"""Writing a checked loan book: borrowers, phones, loans and their audit events, in bulk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection, models
from django.utils import timezone
from tqdm import tqdm

from core.actors import Actor
from core.db import column_of, concrete_field
from core.exceptions import ImportFailed
from core.models import AuditEvent, Borrower, BorrowerPhone, Language, Loan
from core.money import ZERO
from core.phones import msisdn_hash
from core.services.imports.parsing import _PARTS, _BorrowerPlan, _Row
from core.services.imports.reading import _BORROWER_COLUMNS, _LOAN_COLUMNS, _batches, _Book
from core.services.loans import LOAN_NUMBER_PATTERN, loan_number_counter_raise_to
from core.services.masked_keys import masked_keys_rebuild

_BATCH_SIZE = 2000


# What a loan's postings change. Once a loan has a posting here, this system owns them (see _loan_changes).
_BALANCE_FIELDS = frozenset({*_PARTS, "status", "paid_at"})


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did. ``loans_balances_kept`` counts the rows whose amounts or status differ
    from a loan that has postings here: those loans keep their balances (and may still count as
    updated, for their other fields, or as unchanged)."""

    borrowers_created: int
    borrowers_updated: int
    loans_created: int
    loans_updated: int
    loans_unchanged: int
    loans_balances_kept: int
    rows: int


def _write(
    *,
    rows: list[_Row],
    plans: dict[int | str, _BorrowerPlan],
    borrower_key_of_phone: dict[str, int | str],
    book: _Book,
    actor: Actor,
    data_rows: int,
    show_progress: bool,
) -> ImportResult:
    """Write the checked rows. Call inside a transaction: it locks what it updates."""
    now = timezone.now()
    # Raised (and its row locked) first: loan_create holds the counter while it inserts a loan, so a
    # new loan given one of this file's numbers would otherwise deadlock with the import.
    numbered = [int(match[1]) for row in rows if (match := LOAN_NUMBER_PATTERN.match(row.loan_number))]
    if numbered:
        loan_number_counter_raise_to(max(numbered))
    # The book was read before the transaction, and a repayment may have been posted since: lock the
    # rows that look changed and decide again from what they hold now, so that neither a posting nor
    # anything else is overwritten with what was read before. Rows that look unchanged are neither
    # locked nor written; whatever changes them now happens after the import.
    loans_to_update: set[str] = set()
    balances_kept_unchanged = 0  # among the loans not to update
    for row in rows:
        if row.loan_number in book.loans:
            borrower_id = _existing_id(borrower_key_of_phone[row.phone])
            changes, balances_kept = _loan_changes(row, book, borrower_id=borrower_id, now=now)
            if changes:
                loans_to_update.add(row.loan_number)
            else:
                balances_kept_unchanged += balances_kept
    book.lock_and_refresh(
        borrower_ids=sorted(
            plan.key
            for plan in plans.values()
            if isinstance(plan.key, int) and _borrower_changes(plan, plan.key, book)
        ),
        loan_numbers=sorted(loans_to_update),
    )
    with tqdm(total=len(plans) + len(rows), desc="writing", unit=" rows", disable=not show_progress) as bar:
        borrowers = _write_borrowers(plans=plans, book=book, now=now, bar=bar)
        loans = _write_loans(
            rows=rows,
            borrowers=borrowers,
            borrower_key_of_phone=borrower_key_of_phone,
            book=book,
            loans_to_update=loans_to_update,
            actor=actor,
            now=now,
            bar=bar,
        )
    return ImportResult(
        borrowers_created=borrowers.created,
        borrowers_updated=borrowers.updated,
        loans_created=loans.created,
        loans_updated=loans.updated,
        loans_unchanged=len(rows) - loans.created - loans.updated,
        loans_balances_kept=balances_kept_unchanged + loans.balances_kept,
        rows=data_rows,
    )


def _existing_id(borrower_key: int | str) -> int | None:
    # A borrower still to be created has no id yet; None differs from any loan's borrower_id.
    return borrower_key if isinstance(borrower_key, int) else None


@dataclass(slots=True)
class _WrittenBorrowers:
    id_of: dict[int | str, int]  # borrower key -> the borrower's id
    officer_of: dict[int | str, int | None]  # borrower key -> the borrower's loan officer, after the import
    created: int
    updated: int


def _borrower_changes(plan: _BorrowerPlan, borrower_id: int, book: _Book) -> dict[str, object]:
    """The fields of an existing borrower the file changes, with their new values."""
    current = dict(zip(_BORROWER_COLUMNS, book.borrowers[borrower_id], strict=True))
    wanted: dict[str, object] = {"full_name": plan.full_name}
    if plan.national_id:
        wanted["national_id"] = plan.national_id
    if plan.language:
        wanted["preferred_language"] = plan.language
    if plan.officer:
        wanted["loan_officer_id"] = book.officer_ids[plan.officer]
    return {name: value for name, value in wanted.items() if current[name] != value}


def _write_borrowers(
    *, plans: dict[int | str, _BorrowerPlan], book: _Book, now: datetime, bar: tqdm
) -> _WrittenBorrowers:
    written = _WrittenBorrowers(id_of={}, officer_of={}, created=0, updated=0)
    # (phone, plan) of each borrower to create: a new borrower's key is its phone number.
    new_plans = [(plan.key, plan) for plan in plans.values() if isinstance(plan.key, str)]
    for batch in _batches(new_plans, _BATCH_SIZE):
        created = Borrower.objects.bulk_create(
            [
                Borrower(
                    full_name=plan.full_name,
                    national_id=plan.national_id,
                    preferred_language=plan.language or Language.ENGLISH,
                    loan_officer_id=book.officer_ids[plan.officer] if plan.officer else None,
                )
                for _, plan in batch
            ]
        )
        # save() is not called by bulk_create, so the digest BorrowerPhone.save() keeps is computed here.
        BorrowerPhone.objects.bulk_create(
            [
                BorrowerPhone(
                    borrower_id=borrower.pk,
                    number=phone,
                    msisdn_hash=msisdn_hash(phone),
                    is_primary=True,
                )
                for (phone, _), borrower in zip(batch, created, strict=True)
            ]
        )
        # Nor does it write the phones' masked-number keys.
        masked_keys_rebuild(borrower_ids=[borrower.pk for borrower in created])
        for (phone, _), borrower in zip(batch, created, strict=True):
            written.id_of[phone] = borrower.pk
            written.officer_of[phone] = borrower.loan_officer_id
        written.created += len(batch)
        bar.update(len(batch))

    changed_states: list[dict[str, object]] = []
    changed_fields: set[str] = set()
    renamed: list[int] = []
    for plan in plans.values():
        if isinstance(plan.key, str):
            continue
        current = dict(zip(_BORROWER_COLUMNS, book.borrowers[plan.key], strict=True))
        changes = _borrower_changes(plan, plan.key, book)
        written.id_of[plan.key] = plan.key
        # What _borrower_changes gives loan_officer_id when the file names an officer.
        written.officer_of[plan.key] = (
            book.officer_ids[plan.officer] if plan.officer else current["loan_officer_id"]
        )
        if changes:
            changed_states.append({**current, **changes})
            changed_fields.update(changes)
            if "full_name" in changes:
                renamed.append(plan.key)
        bar.update(1)
    _update_rows(Borrower, sorted(changed_fields), changed_states, now)
    # The UPDATE goes around Borrower.save(), which keeps the masked-number keys of a renamed borrower.
    masked_keys_rebuild(borrower_ids=renamed)
    written.updated = len(changed_states)
    return written


@dataclass(slots=True)
class _WrittenLoans:
    created: int = 0
    updated: int = 0
    balances_kept: int = 0


def _loan_changes(
    row: _Row, book: _Book, *, borrower_id: int | None, now: datetime
) -> tuple[dict[str, tuple[object, object]], bool]:
    """The fields of the row's existing loan that the row changes (name -> (before, after)), and
    whether the row's balances differ from a loan whose balances this system owns.

    A loan with a posting here (not reversed) keeps its penalties, fees, interest, principal,
    status and paid_at whatever the file says: the file was written before the money came in, and
    writing it back would undo the posting while its repayment row stays.
    """
    current = dict(zip(_LOAN_COLUMNS, book.loans[row.loan_number], strict=True))
    wanted: dict[str, object] = {
        "borrower_id": borrower_id,
        **{part: getattr(row, part) for part in _PARTS},
        "due_date": row.due_date,
        "status": row.status or _default_status(row, current["status"]),
    }
    # What the file leaves blank is left as it is.
    if row.principal_disbursed is not None:
        wanted["principal_disbursed"] = row.principal_disbursed
    if row.disbursed_on is not None:
        wanted["disbursed_on"] = row.disbursed_on
    if row.officer:
        wanted["loan_officer_id"] = book.officer_ids[row.officer]
    if wanted["status"] != current["status"] and Loan.Status.PAID in (wanted["status"], current["status"]):
        wanted["paid_at"] = now if wanted["status"] == Loan.Status.PAID else None
    changes = {name: (current[name], value) for name, value in wanted.items() if current[name] != value}
    if current["id"] not in book.loans_with_postings:
        return changes, False
    kept = {name: change for name, change in changes.items() if name not in _BALANCE_FIELDS}
    return kept, len(kept) != len(changes)


_LoanChange = tuple[str, dict[str, object], dict[str, tuple[object, object]]]


def _write_loans(
    *,
    rows: list[_Row],
    borrowers: _WrittenBorrowers,
    borrower_key_of_phone: dict[str, int | str],
    book: _Book,
    loans_to_update: set[str],
    actor: Actor,
    now: datetime,
    bar: tqdm,
) -> _WrittenLoans:
    """Create the new loans and update ``loans_to_update`` (locked, and read again), a batch of rows
    at a time with their audit events, so memory stays flat however long the file is."""
    written = _WrittenLoans()
    for batch in _batches(rows, _BATCH_SIZE):
        new_loans: list[Loan] = []
        changed: list[_LoanChange] = []
        for row in batch:
            if row.due_date is None:
                # The parser leaves a due date out only on a row it reported, and rows are written
                # only from a file without errors.
                raise ImportFailed([f"line {row.line}: due_date is empty"])
            key = borrower_key_of_phone[row.phone]
            borrower_id = borrowers.id_of[key]
            if row.loan_number not in book.loans:
                named_officer = book.officer_ids[row.officer] if row.officer else None
                officer_id = named_officer or borrowers.officer_of[key]
                new_loans.append(
                    _new_loan(row, row.due_date, borrower_id=borrower_id, officer_id=officer_id, now=now)
                )
            elif row.loan_number in loans_to_update:
                changes, balances_kept = _loan_changes(row, book, borrower_id=borrower_id, now=now)
                written.balances_kept += balances_kept
                if changes:
                    current = dict(zip(_LOAN_COLUMNS, book.loans[row.loan_number], strict=True))
                    # Every other column keeps the value just read under lock.
                    state = {**current, **{name: after for name, (_, after) in changes.items()}}
                    changed.append((row.loan_number, state, changes))
        _save_loan_batch(new_loans=new_loans, changed=changed, actor=actor, now=now)
        written.created += len(new_loans)
        written.updated += len(changed)
        bar.update(len(batch))
    return written


def _new_loan(row: _Row, due_date: date, *, borrower_id: int, officer_id: int | None, now: datetime) -> Loan:
    status = row.status or (Loan.Status.PAID if row.outstanding == 0 else Loan.Status.ACTIVE)
    return Loan(
        loan_number=row.loan_number,
        borrower_id=borrower_id,
        principal_disbursed=row.principal if row.principal_disbursed is None else row.principal_disbursed,
        penalties=row.penalties,
        fees=row.fees,
        interest=row.interest,
        principal=row.principal,
        disbursed_on=row.disbursed_on,
        due_date=due_date,
        status=status,
        loan_officer_id=officer_id,
        paid_at=now if status == Loan.Status.PAID else None,
    )


def _save_loan_batch(
    *, new_loans: list[Loan], changed: list[_LoanChange], actor: Actor, now: datetime
) -> None:
    """Write one batch: the new loans, the changed ones, and an audit event for each."""
    Loan.objects.bulk_create(new_loans)
    changed_fields = sorted({name for _, _, changes in changed for name in changes})
    _update_rows(Loan, changed_fields, [state for _, state, _ in changed], now)
    events = [_audit_event(actor, "loan.imported", loan.loan_number, vars(loan), now) for loan in new_loans]
    events += [
        _audit_event(actor, "loan.import_updated", loan_number, state, now, changes)
        for loan_number, state, changes in changed
    ]
    AuditEvent.objects.bulk_create(events)


def _default_status(row: _Row, current_status: str) -> str:
    if current_status == Loan.Status.WRITTEN_OFF:
        return Loan.Status.WRITTEN_OFF
    return Loan.Status.PAID if row.outstanding == 0 else Loan.Status.ACTIVE


def _update_rows(
    model: type[models.Model], field_names: list[str], states: list[dict[str, object]], now: datetime
) -> None:
    """Write ``field_names`` (and ``updated_at = now``) of each state (a dict holding ``id``), a
    batch of rows per statement.

    Not ``bulk_update``: it builds a CASE WHEN expression per row and field, about half a
    millisecond a row in Python, which made re-importing a changed 100,000-row book take minutes.
    """
    if not states:
        return
    meta = model._meta
    pk = meta.pk
    pk_column = column_of(pk)
    fields = [concrete_field(model, name) for name in [*field_names, "updated_at"]]
    columns = [column_of(field) for field in fields]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    params = [
        [
            pk.get_db_prep_save(state["id"], connection),
            *(field.get_db_prep_save(state.get(field.attname, now), connection) for field in fields[:-1]),
            fields[-1].get_db_prep_save(now, connection),
        ]
        for state in states
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The casts give VALUES its column types (a column of NULLs would otherwise be text).
            assignments = ", ".join(
                f"{quote(column)} = v.{quote(column)}::{field.db_type(connection)}"
                for field, column in zip(fields, columns, strict=True)
            )
            names = ", ".join(quote(column) for column in [pk_column, *columns])
            for batch in _batches(params, _BATCH_SIZE):
                values = ", ".join(["(" + ", ".join(["%s"] * len(batch[0])) + ")"] * len(batch))
                # Only column and table names from the model's _meta are interpolated; values are parameters.
                cursor.execute(
                    f"UPDATE {table} SET {assignments} FROM (VALUES {values}) AS v({names}) "  # noqa: S608
                    f"WHERE {table}.{quote(pk_column)} = v.{quote(pk_column)}",
                    [value for row in batch for value in row],
                )
        else:
            # SQLite runs executemany in-process: one prepared statement, no round trips.
            assignments = ", ".join(f"{quote(column)} = %s" for column in columns)
            cursor.executemany(
                f"UPDATE {table} SET {assignments} WHERE {quote(pk_column)} = %s",  # noqa: S608
                [[*row[1:], row[0]] for row in params],
            )


def _audit_event(
    actor: Actor,
    action: str,
    loan_number: str,
    state: dict[str, Any],
    now: datetime,
    changes: dict[str, tuple[object, object]] | None = None,
) -> AuditEvent:
    # The fields audit_record writes, built here so that thousands go in one INSERT.
    parts = {part: state[part] for part in _PARTS}
    data: dict[str, object] = {
        "loan_number": loan_number,
        "principal_disbursed": _json_value(state["principal_disbursed"]),
        **{part: _json_value(value) for part, value in parts.items()},
        "status": state["status"],
    }
    if changes is not None:
        data["changes"] = {
            name: {"before": _json_value(before), "after": _json_value(after)}
            for name, (before, after) in changes.items()
        }
    return AuditEvent(
        created_at=now,
        actor_type=actor.kind,
        actor_user=actor.user,
        actor_label=actor.label,
        action=action,
        borrower_id=state["borrower_id"],
        loan_id=state["id"],
        object_type=Loan._meta.model_name or "",  # None only before the class is built
        object_id=str(state["id"]),
        amount=sum(parts.values(), ZERO),
        data=data,
    )


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value
