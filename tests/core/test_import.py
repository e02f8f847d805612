"""The loan-book import: ``loan_import_csv`` and ``manage.py import_loans``."""

import datetime
import hashlib
import io
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.actors import Actor
from core.exceptions import ImportFailed
from core.models import AuditEvent, Borrower, BorrowerPhone, Counter, Loan, Repayment
from core.services import (
    ImportResult,
    PostingResult,
    imports,
    loan_create,
    loan_import_csv,
    loan_next_number,
    repayment_post,
    repayment_reverse,
)
from tests.factories import BorrowerFactory, LoanFactory, OfficerFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "imports"
HEADER = "loan_number,borrower_name,phone,principal,due_date"

# The outcome of importing book.csv; tests that change it start from here.
BOOK_RESULT = ImportResult(
    borrowers_created=3,
    borrowers_updated=0,
    loans_created=5,
    loans_updated=0,
    loans_unchanged=0,
    loans_balances_kept=0,
    rows=5,
)
ERRORS_CSV_MESSAGES = [
    "line 2: phone '****' is not a Kenyan mobile number",
    "line 3: principal '-5' is negative",
    "line 4: fees 'abc' is not a number",
    "line 5: due_date '2025-02-30' is not a date (YYYY-MM-DD)",
    "line 6: loan number 'LOAN-000004' is also on line 5",
    "line 7: unknown officer 'nobody'",
    "line 8: status 'closed' is not one of active, paid, written_off",
    "line 9: language 'fr' is not one of en, sw",
    "line 10: loan_number is empty",
    "line 11: borrower_name is empty",
    "line 12: status is paid but 1000.00 is outstanding",
    "line 13: due_date '01/03/2025' is not a date (YYYY-MM-DD)",
    "line 14: disbursed_on '2025-1-1' is not a date (YYYY-MM-DD)",
    "line 15: principal is empty",
    "line 17: national_id '11112222' is also given to a different phone on line 16",
    "line 18: phone '2547*****111' has national_id '99998888' here but '11112222' on line 16",
    "line 19: fees '1.234' has more than two decimal places",
    # Line 20 writes Jane's name with other case and spacing: the same name.
    "line 21: phone '2547*****678' has borrower_name 'Janet Wanjiru' here but 'Jane Wanjiru' on line 3",
    "line 22: status is active but nothing is outstanding",
    "line 23: principal '1e30' is too large",
    "line 24: the outstanding total 1,000,000,000,000.99 is too large",
]


@pytest.fixture
def officers(db):
    return {name: OfficerFactory(username=name) for name in ("wanjiku", "kamau")}


def import_fixture(name: str, actor) -> ImportResult:
    with open(FIXTURES / name, encoding="utf-8-sig", newline="") as stream:
        return loan_import_csv(file=stream, actor=actor)


def import_text(text: str, actor) -> ImportResult:
    return loan_import_csv(file=io.StringIO(text), actor=actor)


def loan_row(loan_number: str) -> dict:
    fields = [
        "borrower__full_name", "principal_disbursed", "penalties", "fees", "interest", "principal",
        "disbursed_on", "due_date", "status", "loan_officer__username",
    ]  # fmt: skip
    return Loan.objects.filter(loan_number=loan_number).values(*fields).get()


def pay(loan_number: str, amount: str) -> PostingResult:
    loan = Loan.objects.get(loan_number=loan_number)
    return repayment_post(loan=loan, amount=Decimal(amount), actor=Actor.system("mpesa"), source="mpesa")


def balances(loan_number: str) -> dict:
    loan = Loan.objects.get(loan_number=loan_number)
    return {
        "penalties": loan.penalties,
        "fees": loan.fees,
        "interest": loan.interest,
        "principal": loan.principal,
        "status": loan.status,
        "paid_at": loan.paid_at,
    }


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"] for q in queries if q["sql"].lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
    ]


def run_between_read_and_write(monkeypatch, action) -> None:
    """Make ``action`` happen after the import has read the database and before it writes, as a
    repayment arriving from M-Pesa in the middle of a long import would."""
    load = imports._Book.load.__func__

    def load_then_act(cls, rows):
        book = load(cls, rows)
        action()
        return book

    monkeypatch.setattr(imports._Book, "load", classmethod(load_then_act))


def assert_nothing_written() -> None:
    assert Borrower.objects.count() == 0
    assert BorrowerPhone.objects.count() == 0
    assert Loan.objects.count() == 0
    assert AuditEvent.objects.count() == 0
    assert not Counter.objects.exists()


# --- Creating -------------------------------------------------------------------------------------


def test_import_creates_borrowers_and_their_loans(officers, system_actor):
    result = import_fixture("book.csv", system_actor)

    assert result == BOOK_RESULT
    jane = Borrower.objects.get(full_name="Jane Wanjiru")
    assert (jane.national_id, jane.preferred_language, jane.loan_officer) == (
        "12345678",
        "sw",
        officers["wanjiku"],
    )
    # Three rows wrote Jane's phone three ways: one borrower, one phone.
    assert list(jane.phones.values_list("number", "msisdn_hash", "is_primary")) == [
        ("+254712345678", hashlib.sha256(b"254712345678").hexdigest(), True)
    ]
    assert sorted(jane.loans.values_list("loan_number", flat=True)) == [
        "LOAN-000101",
        "LOAN-000102",
        "LOAN-000103",
    ]
    assert loan_row("LOAN-000101") == {
        "borrower__full_name": "Jane Wanjiru",
        "principal_disbursed": Decimal("2000.00"),
        "penalties": Decimal("0.00"),
        "fees": Decimal("50.00"),
        "interest": Decimal("100.00"),
        "principal": Decimal("1250.50"),
        "disbursed_on": datetime.date(2025, 1, 5),
        "due_date": datetime.date(2025, 2, 5),
        "status": "active",
        "loan_officer__username": "wanjiku",
    }
    # No principal_disbursed: the outstanding principal is what was lent. No officer: the borrower's.
    assert loan_row("LOAN-000102") == {
        "borrower__full_name": "Jane Wanjiru",
        "principal_disbursed": Decimal("3000.00"),
        "penalties": Decimal("0.00"),
        "fees": Decimal("0.00"),
        "interest": Decimal("0.00"),
        "principal": Decimal("3000.00"),
        "disbursed_on": datetime.date(2025, 3, 1),
        "due_date": datetime.date(2025, 4, 1),
        "status": "active",
        "loan_officer__username": "wanjiku",
    }
    assert loan_row("LOAN-000500") == {
        "borrower__full_name": "Peter Otieno",
        "principal_disbursed": Decimal("5000.00"),
        "penalties": Decimal("320.50"),
        "fees": Decimal("250.00"),
        "interest": Decimal("500.00"),
        "principal": Decimal("5000.00"),
        "disbursed_on": None,
        "due_date": datetime.date(2025, 5, 31),
        "status": "active",
        "loan_officer__username": None,
    }
    peter = Borrower.objects.get(full_name="Peter Otieno")
    assert (peter.national_id, peter.preferred_language, peter.loan_officer) == (None, "en", None)
    assert list(peter.phones.values_list("number", flat=True)) == ["+254722000111"]
    mary = Borrower.objects.get(full_name="Mary Achieng")
    assert (mary.national_id, mary.preferred_language) == ("22334455", "en")
    assert list(mary.phones.values_list("number", flat=True)) == ["+254111000222"]
    assert dict(Loan.objects.values_list("loan_number", "status")) == {
        "LOAN-000101": "active",
        "LOAN-000102": "active",
        "LOAN-000103": "paid",
        "LOAN-000500": "active",
        "OLD-7": "written_off",
    }
    paid = Loan.objects.get(loan_number="LOAN-000103")
    assert timezone.now() - paid.paid_at < datetime.timedelta(minutes=1)
    assert not Loan.objects.exclude(loan_number="LOAN-000103").filter(paid_at__isnull=False).exists()


def test_import_audits_each_created_loan(officers, system_actor):
    import_fixture("book.csv", system_actor)

    events = AuditEvent.objects.all()
    assert sorted(events.values_list("action", "loan__loan_number")) == [
        ("loan.imported", number)
        for number in ["LOAN-000101", "LOAN-000102", "LOAN-000103", "LOAN-000500", "OLD-7"]
    ]
    assert set(events.values_list("actor_type", "actor_label")) == {("system", "tests")}
    event = events.get(loan__loan_number="LOAN-000101")
    assert event.borrower.full_name == "Jane Wanjiru"
    assert (event.object_type, event.object_id) == ("loan", str(event.loan_id))
    assert event.amount == Decimal("1400.50")
    assert event.data == {
        "loan_number": "LOAN-000101",
        "principal_disbursed": "2000.00",
        "penalties": "0.00",
        "fees": "50.00",
        "interest": "100.00",
        "principal": "1250.50",
        "status": "active",
    }


def test_import_raises_the_loan_number_counter(officers, system_actor):
    import_fixture("book.csv", system_actor)

    assert loan_next_number() == "LOAN-000501"


def test_import_never_lowers_the_loan_number_counter(system_actor):
    Counter.objects.create(name="loan_number", value=900)

    import_text(f"{HEADER}\nLOAN-000005,Grace Njeri,0700111222,100,2025-07-01\n", system_actor)

    assert loan_next_number() == "LOAN-000901"


def test_existing_borrower_is_found_by_phone_and_updated(officers, system_actor):
    jane = BorrowerFactory(full_name="J. Wanjiru", phones=["+254712345678"])
    other_loan = LoanFactory(borrower=jane, loan_number="LOAN-000050")
    before = loan_row("LOAN-000050")

    result = import_fixture("book.csv", system_actor)

    assert result == ImportResult(
        borrowers_created=2,
        borrowers_updated=1,
        loans_created=5,
        loans_updated=0,
        loans_unchanged=0,
        loans_balances_kept=0,
        rows=5,
    )
    jane.refresh_from_db()
    assert (jane.full_name, jane.national_id, jane.preferred_language, jane.loan_officer) == (
        "Jane Wanjiru",
        "12345678",
        "sw",
        officers["wanjiku"],
    )
    assert BorrowerPhone.objects.count() == 3
    assert sorted(jane.loans.values_list("loan_number", flat=True)) == [
        "LOAN-000050",
        "LOAN-000101",
        "LOAN-000102",
        "LOAN-000103",
    ]
    # A loan the file does not mention is left alone.
    assert loan_row("LOAN-000050") == {**before, "borrower__full_name": "Jane Wanjiru"}
    assert not AuditEvent.objects.filter(loan=other_loan).exists()


def test_bom_before_the_header_is_ignored(system_actor):
    import_fixture("bom.csv", system_actor)
    # Opened without utf-8-sig, the BOM reaches the parser as a character: still understood.
    with open(FIXTURES / "bom.csv", encoding="utf-8", newline="") as stream:
        result = loan_import_csv(file=stream, actor=system_actor)

    assert result.loans_unchanged == 1
    assert loan_row("LOAN-000042")["principal"] == Decimal("4500.00")


def test_blank_lines_are_skipped_and_not_counted(system_actor):
    text = f"{HEADER}\n\nLOAN-000001,Grace Njeri,0700111222,100,2025-07-01\n,,,,\n"

    result = import_text(text, system_actor)

    assert (result.rows, result.loans_created) == (1, 1)


# --- Re-importing ---------------------------------------------------------------------------------


def test_reimporting_the_same_file_changes_nothing(officers, system_actor):
    import_fixture("book.csv", system_actor)
    updated_at = dict(Loan.objects.values_list("loan_number", "updated_at"))
    borrowers_updated_at = dict(Borrower.objects.values_list("id", "updated_at"))

    with CaptureQueriesContext(connection) as queries:
        result = import_fixture("book.csv", system_actor)

    assert result == ImportResult(
        borrowers_created=0,
        borrowers_updated=0,
        loans_created=0,
        loans_updated=0,
        loans_unchanged=5,
        loans_balances_kept=0,
        rows=5,
    )
    assert writes(queries) == []
    assert dict(Loan.objects.values_list("loan_number", "updated_at")) == updated_at
    assert dict(Borrower.objects.values_list("id", "updated_at")) == borrowers_updated_at
    assert AuditEvent.objects.count() == 5


def test_changed_rows_update_their_loans_and_borrowers(officers, system_actor):
    import_fixture("book.csv", system_actor)
    unchanged_at = Loan.objects.get(loan_number="LOAN-000101").updated_at

    result = import_fixture("book_changed.csv", system_actor)

    assert result == ImportResult(
        borrowers_created=0,
        borrowers_updated=1,
        loans_created=0,
        loans_updated=3,
        loans_unchanged=2,
        loans_balances_kept=0,
        rows=5,
    )
    loan = Loan.objects.get(loan_number="LOAN-000102")
    assert (loan.principal, loan.fees, loan.principal_disbursed) == (
        Decimal("2500.00"),
        Decimal("100.00"),
        Decimal("3000.00"),  # the file gives no principal_disbursed: an update leaves it alone
    )
    assert loan.updated_at > unchanged_at
    settled = Loan.objects.get(loan_number="LOAN-000500")
    assert (settled.status, settled.outstanding) == ("paid", Decimal("0.00"))
    assert settled.paid_at is not None
    moved = Loan.objects.get(loan_number="OLD-7")
    assert (moved.status, moved.loan_officer) == ("written_off", officers["kamau"])
    assert Borrower.objects.get(full_name="Mary Achieng").loan_officer == officers["kamau"]
    assert Loan.objects.get(loan_number="LOAN-000101").updated_at == unchanged_at


def test_changed_rows_are_audited_with_before_and_after(officers, system_actor):
    import_fixture("book.csv", system_actor)

    import_fixture("book_changed.csv", system_actor)

    updates = AuditEvent.objects.filter(action="loan.import_updated")
    assert sorted(updates.values_list("loan__loan_number", flat=True)) == [
        "LOAN-000102",
        "LOAN-000500",
        "OLD-7",
    ]
    event = updates.get(loan__loan_number="LOAN-000102")
    assert (event.actor_label, event.amount) == ("tests", Decimal("2600.00"))
    assert event.data == {
        "loan_number": "LOAN-000102",
        "principal_disbursed": "3000.00",
        "penalties": "0.00",
        "fees": "100.00",
        "interest": "0.00",
        "principal": "2500.00",
        "status": "active",
        "changes": {
            "principal": {"before": "3000.00", "after": "2500.00"},
            "fees": {"before": "0.00", "after": "100.00"},
        },
    }
    settled = updates.get(loan__loan_number="LOAN-000500").data["changes"]
    assert settled["status"] == {"before": "active", "after": "paid"}
    assert settled["paid_at"]["before"] is None
    assert settled["penalties"] == {"before": "320.50", "after": "0.00"}
    officer_ids = [officers["wanjiku"].pk, officers["kamau"].pk]
    assert updates.get(loan__loan_number="OLD-7").data["changes"] == {
        "loan_officer_id": {"before": officer_ids[0], "after": officer_ids[1]}
    }


def test_a_loan_can_move_to_another_borrower(officers, system_actor):
    import_fixture("book.csv", system_actor)

    result = import_text(f"{HEADER}\nLOAN-000500,Mary Achieng,+254111000222,5000,2025-05-31\n", system_actor)

    assert (result.loans_updated, result.borrowers_updated) == (1, 0)
    loan = Loan.objects.get(loan_number="LOAN-000500")
    assert loan.borrower.full_name == "Mary Achieng"
    # Only the link changed: penalties, fees and interest left blank are zero now too.
    assert set(AuditEvent.objects.get(action="loan.import_updated").data["changes"]) == {
        "borrower_id",
        "penalties",
        "fees",
        "interest",
    }


# --- Loans with repayments posted here -------------------------------------------------------------


def test_reimporting_after_repayments_keeps_the_posted_balances_and_says_so(officers, system_actor):
    import_fixture("book.csv", system_actor)
    pay("LOAN-000101", "400.50")  # fees 50 and interest 100 first, then 250.50 of principal
    pay("LOAN-000102", "3000")  # settles it
    paid_at = Loan.objects.get(loan_number="LOAN-000102").paid_at

    with CaptureQueriesContext(connection) as queries:
        result = import_fixture("book.csv", system_actor)

    assert result == ImportResult(
        borrowers_created=0,
        borrowers_updated=0,
        loans_created=0,
        loans_updated=0,
        loans_unchanged=5,
        loans_balances_kept=2,
        rows=5,
    )
    assert writes(queries) == []
    assert balances("LOAN-000101") == {
        "penalties": Decimal("0.00"),
        "fees": Decimal("0.00"),
        "interest": Decimal("0.00"),
        "principal": Decimal("1000.00"),
        "status": "active",
        "paid_at": None,
    }
    assert balances("LOAN-000102") == {
        "penalties": Decimal("0.00"),
        "fees": Decimal("0.00"),
        "interest": Decimal("0.00"),
        "principal": Decimal("0.00"),
        "status": "paid",
        "paid_at": paid_at,
    }
    assert sorted(Repayment.objects.values_list("loan__loan_number", "kind", "amount")) == [
        ("LOAN-000101", "posting", Decimal("400.50")),
        ("LOAN-000102", "posting", Decimal("3000.00")),
    ]
    assert not AuditEvent.objects.filter(action="loan.import_updated").exists()


def test_a_loan_with_postings_still_takes_its_other_fields_from_the_file(officers, system_actor):
    import_fixture("book.csv", system_actor)
    pay("LOAN-000101", "400.50")
    posted = balances("LOAN-000101")
    text = (
        "loan_number,borrower_name,phone,principal,interest,due_date,disbursed_on,officer,status\n"
        "LOAN-000101,Jane Wanjiru,0712345678,1250.50,100,2025-03-05,2025-01-04,kamau,written_off\n"
    )

    result = import_text(text, system_actor)

    assert (result.loans_updated, result.loans_unchanged, result.loans_balances_kept) == (1, 0, 1)
    # Neither the file's amounts (fees left blank would be zero) nor its status are taken.
    assert balances("LOAN-000101") == posted
    loan = Loan.objects.get(loan_number="LOAN-000101")
    assert (loan.due_date, loan.disbursed_on, loan.loan_officer) == (
        datetime.date(2025, 3, 5),
        datetime.date(2025, 1, 4),
        officers["kamau"],
    )
    event = AuditEvent.objects.get(action="loan.import_updated")
    assert set(event.data["changes"]) == {"due_date", "disbursed_on", "loan_officer_id"}
    assert (event.data["principal"], event.data["status"], event.amount) == (
        "1000.00",
        "active",
        Decimal("1000.00"),
    )


def test_money_outstanding_does_not_reopen_a_loan_paid_here(officers, system_actor):
    import_fixture("book.csv", system_actor)
    pay("LOAN-000102", "3000")
    posted = balances("LOAN-000102")

    result = import_text(f"{HEADER}\nLOAN-000102,Jane Wanjiru,0712345678,3000,2025-04-01\n", system_actor)

    assert (result.loans_updated, result.loans_unchanged, result.loans_balances_kept) == (0, 1, 1)
    assert balances("LOAN-000102") == {**posted, "status": "paid"}
    assert Repayment.objects.get().loan.loan_number == "LOAN-000102"


def test_a_loan_whose_postings_are_all_reversed_takes_its_balances_from_the_file(officers, system_actor):
    import_fixture("book.csv", system_actor)
    posting = pay("LOAN-000102", "3000").repayment
    repayment_reverse(repayment=posting, actor=system_actor, reason="paid to the wrong loan")

    result = import_text(f"{HEADER}\nLOAN-000102,Jane Wanjiru,0712345678,2500,2025-04-01\n", system_actor)

    assert (result.loans_updated, result.loans_balances_kept) == (1, 0)
    assert balances("LOAN-000102") == {
        "penalties": Decimal("0.00"),
        "fees": Decimal("0.00"),
        "interest": Decimal("0.00"),
        "principal": Decimal("2500.00"),
        "status": "active",
        "paid_at": None,
    }


# --- Writes while the import runs -----------------------------------------------------------------


def test_a_repayment_posted_after_the_read_survives_the_import(monkeypatch, officers, system_actor):
    import_fixture("book.csv", system_actor)
    # LOAN-000101's first posting lands after the import has read the loans.
    run_between_read_and_write(monkeypatch, lambda: pay("LOAN-000101", "400.50"))
    text = (
        "loan_number,borrower_name,phone,principal,interest,fees,due_date\n"
        "LOAN-000101,Jane Wanjiru,0712345678,1250.50,100,50,2025-02-28\n"  # only the due date changes
        "LOAN-000102,Jane Wanjiru,0712345678,2500,0,0,2025-04-01\n"  # only the principal changes
    )

    result = import_text(text, system_actor)

    assert (result.loans_updated, result.loans_unchanged, result.loans_balances_kept) == (2, 0, 1)
    # The batch UPDATE writes principal for both loans: LOAN-000101's must be what the posting left.
    assert balances("LOAN-000101") == {
        "penalties": Decimal("0.00"),
        "fees": Decimal("0.00"),
        "interest": Decimal("0.00"),
        "principal": Decimal("1000.00"),
        "status": "active",
        "paid_at": None,
    }
    assert Loan.objects.get(loan_number="LOAN-000101").due_date == datetime.date(2025, 2, 28)
    assert Loan.objects.get(loan_number="LOAN-000102").principal == Decimal("2500.00")
    posting = Repayment.objects.get()
    assert (posting.loan.loan_number, posting.amount, posting.is_reversed) == (
        "LOAN-000101",
        Decimal("400.50"),
        False,
    )
    changes = AuditEvent.objects.get(action="loan.import_updated", loan__loan_number="LOAN-000101").data
    assert changes["changes"] == {"due_date": {"before": "2025-02-05", "after": "2025-02-28"}}
    assert changes["principal"] == "1000.00"


def test_a_borrower_changed_after_the_read_keeps_the_change(monkeypatch, officers, system_actor):
    import_fixture("book.csv", system_actor)
    jane = Borrower.objects.get(full_name="Jane Wanjiru")
    # Jane picks English on the USSD menu after the import has read her.
    run_between_read_and_write(
        monkeypatch, lambda: Borrower.objects.filter(pk=jane.pk).update(preferred_language="en")
    )
    text = (
        "loan_number,borrower_name,phone,principal,due_date,language\n"
        "LOAN-000102,Jane W. Wanjiru,0712345678,3000,2025-04-01,\n"
        "LOAN-000500,Peter Otieno,0722000111,5000,2025-05-31,sw\n"
    )

    result = import_text(text, system_actor)

    assert result.borrowers_updated == 2
    jane.refresh_from_db()
    # The UPDATE sets preferred_language for Peter; for Jane it must carry her new choice.
    assert (jane.full_name, jane.preferred_language) == ("Jane W. Wanjiru", "en")
    assert Borrower.objects.get(full_name="Peter Otieno").preferred_language == "sw"


def run_in_thread(work) -> threading.Thread:
    """Start ``work`` on its own database connection; its exception, if any, is kept on the thread."""

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            thread.error = exc
        finally:
            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.error = None
    thread.start()
    return thread


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgres_a_repayment_committed_after_the_read_survives(monkeypatch, system_actor):
    rows = "LOAN-000001,Grace Njeri,0700111222,{},{}\nLOAN-000002,Grace Njeri,0700111222,{},2025-07-01\n"
    import_text(HEADER + "\n" + rows.format(1000, "2025-07-01", 1000), system_actor)

    def post_from_another_connection() -> None:
        thread = run_in_thread(lambda: pay("LOAN-000001", "300"))
        thread.join(timeout=10)
        assert thread.error is None

    run_between_read_and_write(monkeypatch, post_from_another_connection)

    result = import_text(HEADER + "\n" + rows.format(1000, "2025-08-01", 900), system_actor)

    assert (result.loans_updated, result.loans_balances_kept) == (2, 1)
    first, second = Loan.objects.order_by("loan_number")
    assert (first.principal, first.due_date) == (Decimal("700.00"), datetime.date(2025, 8, 1))
    assert second.principal == Decimal("900.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgres_a_repayment_arriving_during_the_write_waits_for_it(monkeypatch, system_actor):
    import_text(f"{HEADER}\nLOAN-000001,Grace Njeri,0700111222,1000,2025-07-01\n", system_actor)
    lock_and_refresh = imports._Book.lock_and_refresh
    racing: list[threading.Thread] = []

    def lock_then_race(book, **rows):
        lock_and_refresh(book, **rows)
        racing.append(run_in_thread(lambda: pay("LOAN-000001", "300")))
        racing[0].join(timeout=1)  # it must still be waiting for the loan's lock

    monkeypatch.setattr(imports._Book, "lock_and_refresh", lock_then_race)

    import_text(f"{HEADER}\nLOAN-000001,Grace Njeri,0700111222,800,2025-07-01\n", system_actor)
    blocked = racing[0].is_alive()
    racing[0].join(timeout=10)

    assert blocked
    assert racing[0].error is None
    # The import's balance went in first; the posting came off it.
    assert Loan.objects.get().principal == Decimal("500.00")
    assert Repayment.objects.get().amount == Decimal("300.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgres_a_loan_created_during_the_import_gets_the_next_free_number(monkeypatch, system_actor):
    grace = BorrowerFactory()
    lock_and_refresh = imports._Book.lock_and_refresh
    racing: list[threading.Thread] = []
    created: list[Loan] = []

    def create_loan() -> None:
        due_date = datetime.date(2025, 7, 1)
        created.append(
            loan_create(borrower=grace, principal=Decimal("100"), due_date=due_date, actor=system_actor)
        )

    def lock_then_create(book, **rows):
        lock_and_refresh(book, **rows)
        racing.append(run_in_thread(create_loan))
        racing[0].join(timeout=1)  # waiting for the loan number counter the import holds

    monkeypatch.setattr(imports._Book, "lock_and_refresh", lock_then_create)

    import_text(f"{HEADER}\nLOAN-000001,Grace Njeri,0700111222,1000,2025-07-01\n", system_actor)
    racing[0].join(timeout=10)

    assert racing[0].error is None
    assert [loan.loan_number for loan in created] == ["LOAN-000002"]
    assert Loan.objects.count() == 2


# --- Status ---------------------------------------------------------------------------------------


def test_status_defaults_to_paid_when_nothing_is_outstanding(system_actor):
    text = (
        "loan_number,borrower_name,phone,principal,interest,due_date,status\n"
        "LOAN-000001,Grace Njeri,0700111222,0,0.00,2025-07-01,\n"
        "LOAN-000002,Grace Njeri,0700111222,10,0,2025-07-01,\n"
        "LOAN-000003,Grace Njeri,0700111222,0,0,2025-07-01,PAID\n"
    )

    import_text(text, system_actor)

    assert dict(Loan.objects.values_list("loan_number", "status")) == {
        "LOAN-000001": "paid",
        "LOAN-000002": "active",
        "LOAN-000003": "paid",
    }
    assert set(Loan.objects.filter(paid_at__isnull=False).values_list("loan_number", flat=True)) == {
        "LOAN-000001",
        "LOAN-000003",
    }


def test_money_outstanding_reopens_a_loan_the_file_had_paid(officers, system_actor):
    # Nothing was posted here: the file still owns this loan's balances (see the tests above for
    # a loan paid by a repayment, which stays paid).
    import_fixture("book.csv", system_actor)

    import_text(f"{HEADER}\nLOAN-000103,Jane Wanjiru,0712345678,100,2024-12-01\n", system_actor)

    loan = Loan.objects.get(loan_number="LOAN-000103")
    assert (loan.status, loan.paid_at, loan.principal) == ("active", None, Decimal("100.00"))
    changes = AuditEvent.objects.get(action="loan.import_updated").data["changes"]
    assert changes["status"] == {"before": "paid", "after": "active"}
    assert changes["paid_at"]["after"] is None


def test_a_written_off_loan_stays_written_off_when_the_file_gives_no_status(officers, system_actor):
    import_fixture("book.csv", system_actor)

    result = import_text(f"{HEADER}\nOLD-7,Mary Achieng,0111000222,800,2025-06-30\n", system_actor)

    assert result.loans_unchanged == 1
    assert Loan.objects.get(loan_number="OLD-7").status == "written_off"


@pytest.mark.parametrize(
    ("written", "stored"),
    [("", "en"), ("EN", "en"), ("English", "en"), ("sw", "sw"), ("Kiswahili", "sw"), ("SWAHILI", "sw")],
)
def test_language_is_read_in_either_spelling(system_actor, written, stored):
    import_text(
        f"{HEADER},language\nLOAN-000001,Grace Njeri,0700111222,100,2025-07-01,{written}\n", system_actor
    )

    assert Borrower.objects.get().preferred_language == stored


# --- Errors ---------------------------------------------------------------------------------------


def test_every_error_is_listed_by_line_and_nothing_is_written(system_actor):
    with pytest.raises(ImportFailed) as failure:
        import_fixture("errors.csv", system_actor)

    assert failure.value.errors == ERRORS_CSV_MESSAGES
    assert failure.value.detail == "21 error(s) in the file; nothing was imported"
    assert_nothing_written()


def test_one_bad_row_stops_the_good_ones_too(officers, system_actor):
    text = (
        f"{HEADER}\n"
        "LOAN-000001,Grace Njeri,0700111222,100,2025-07-01\n"
        "LOAN-000002,Grace Njeri,0700111222,100,2025-07-01\n"
        "LOAN-000003,Grace Njeri,0700111222,100,tomorrow\n"
    )

    with pytest.raises(ImportFailed) as failure:
        import_text(text, system_actor)

    assert failure.value.errors == ["line 4: due_date 'tomorrow' is not a date (YYYY-MM-DD)"]
    assert_nothing_written()


def test_header_problems_are_listed_together(system_actor):
    text = "Loan_Number,borrower_name,phone,amount,due_date,phone\nLOAN-1,Grace Njeri,0700111222,100,2025-07-01,\n"

    with pytest.raises(ImportFailed) as failure:
        import_text(text, system_actor)

    assert failure.value.errors == [
        "line 1: unknown column 'amount'",
        "line 1: column 'phone' appears twice",
        "line 1: missing required column 'principal'",
    ]
    assert_nothing_written()


def test_an_unknown_column_is_reported_with_the_row_errors(system_actor):
    text = f"{HEADER},colour\nLOAN-1,Grace Njeri,0700111222,-1,2025-07-01,blue\n"

    with pytest.raises(ImportFailed) as failure:
        import_text(text, system_actor)

    assert failure.value.errors == ["line 1: unknown column 'colour'", "line 2: principal '-1' is negative"]


def test_cells_outside_the_named_columns_are_refused(system_actor):
    text = (
        f"{HEADER},\n"
        "LOAN-1,Grace Njeri,0700111222,100,2025-07-01,,\n"  # empty extra cells are harmless
        "LOAN-2,Grace Njeri,0700111222,100,2025-07-01,oops\n"
        "LOAN-3,Grace Njeri,0700111222,100,2025-07-01,,oops\n"
    )

    with pytest.raises(ImportFailed) as failure:
        import_text(text, system_actor)

    assert failure.value.errors == [
        "line 3: column 6 has a value but no name in the header",
        "line 4: has 7 cells but the header names 6 columns",
    ]


def test_national_id_of_a_borrower_in_the_database_is_refused(officers, system_actor):
    BorrowerFactory(national_id="12345678", phones=["+254733000444"])

    with pytest.raises(ImportFailed) as failure:
        import_fixture("book.csv", system_actor)

    assert failure.value.errors == [
        "line 2: national_id '12345678' belongs to another borrower",
        "line 3: national_id '12345678' belongs to another borrower",
    ]
    assert Borrower.objects.count() == 1
    assert Loan.objects.count() == 0


def test_unknown_officer_is_refused(system_actor):
    # book.csv names officer "wanjiku", who does not exist here.
    with pytest.raises(ImportFailed) as failure:
        import_fixture("book.csv", system_actor)

    assert failure.value.errors == ["line 2: unknown officer 'wanjiku'", "line 6: unknown officer 'wanjiku'"]
    assert_nothing_written()


@pytest.mark.parametrize(
    "staff",
    [{"is_staff": True}, {"is_staff": False, "role": "admin"}],
    ids=["staff", "admin"],
)
def test_an_active_staff_user_can_be_the_officer(system_actor, staff):
    OfficerFactory(username="otieno", **staff)

    import_text(f"{HEADER},officer\nLOAN-000001,Grace Njeri,0700111222,100,2025-07-01,otieno\n", system_actor)

    assert Loan.objects.get().loan_officer.username == "otieno"


@pytest.mark.parametrize(
    "not_officer",
    [
        {"is_staff": False, "role": "officer"},
        {"is_staff": True, "is_active": False},
        {"is_staff": True, "role": "admin", "is_active": False},
    ],
    ids=["not-staff", "inactive", "inactive-admin"],
)
def test_a_user_who_is_not_active_staff_cannot_be_the_officer(system_actor, not_officer):
    OfficerFactory(username="otieno", **not_officer)
    text = (
        f"{HEADER},officer\n"
        "LOAN-000001,Grace Njeri,0700111222,100,2025-07-01,otieno\n"
        "LOAN-000002,Grace Njeri,0700111222,100,2025-07-01,\n"
    )

    with pytest.raises(ImportFailed) as failure:
        import_text(text, system_actor)

    assert failure.value.errors == ["line 2: officer 'otieno' is not an active member of staff"]
    assert_nothing_written()


def test_a_conflicting_write_during_the_import_rolls_everything_back(monkeypatch, system_actor):
    # Another writer creates LOAN-000042 after the import has read the database.
    LoanFactory(loan_number="LOAN-000042")
    load = imports._Book.load.__func__

    def stale_load(cls, rows):
        book = load(cls, rows)
        book.loans.clear()
        return book

    monkeypatch.setattr(imports._Book, "load", classmethod(stale_load))

    with pytest.raises(ImportFailed) as failure:
        import_fixture("bom.csv", system_actor)

    assert failure.value.errors == [
        "the database changed while the file was being imported; nothing was imported, try again"
    ]
    assert not Borrower.objects.filter(full_name="Grace Njeri").exists()
    assert Loan.objects.count() == 1


def test_empty_file_is_refused(system_actor):
    with pytest.raises(ImportFailed) as failure:
        import_text("", system_actor)

    assert failure.value.errors == ["line 1: the file is empty"]


# --- The command ----------------------------------------------------------------------------------


def test_command_prints_what_it_did(officers):
    out = io.StringIO()

    call_command("import_loans", str(FIXTURES / "book.csv"), stdout=out, stderr=io.StringIO())

    assert out.getvalue() == (
        "Imported 5 rows: 3 borrowers created, 0 updated; 5 loans created, 0 updated, 0 unchanged.\n"
    )
    assert set(AuditEvent.objects.values_list("actor_type", "actor_label")) == {("system", "import_loans")}


def test_command_says_how_many_loans_kept_the_balances_posted_here(officers):
    book = str(FIXTURES / "book.csv")
    call_command("import_loans", book, stdout=io.StringIO())
    outputs = []
    for loan_number, amount in [("LOAN-000101", "400.50"), ("LOAN-000500", "100")]:
        pay(loan_number, amount)
        out = io.StringIO()
        call_command("import_loans", book, stdout=out)
        outputs.append(out.getvalue())

    assert outputs == [
        "Imported 5 rows: 0 borrowers created, 0 updated; 0 loans created, 0 updated, 5 unchanged.\n"
        "1 loan keeps the balances posted here (its row's amounts were ignored).\n",
        "Imported 5 rows: 0 borrowers created, 0 updated; 0 loans created, 0 updated, 5 unchanged.\n"
        "2 loans keep the balances posted here (their rows' amounts were ignored).\n",
    ]


def test_command_lists_the_errors_and_fails(db):
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match=r"^21 error\(s\) in the file; nothing was imported$") as failure:
        call_command("import_loans", str(FIXTURES / "errors.csv"), stdout=out, stderr=err)

    assert failure.value.returncode == 1
    assert err.getvalue().splitlines() == ERRORS_CSV_MESSAGES
    assert out.getvalue() == ""
    assert_nothing_written()


def test_command_reads_standard_input(monkeypatch):
    # Bytes as a pipe delivers them, BOM included; the command decodes them itself.
    raw = (FIXTURES / "bom.csv").read_bytes()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="latin-1"))
    out = io.StringIO()

    call_command("import_loans", "-", stdout=out)

    assert out.getvalue() == (
        "Imported 1 rows: 1 borrowers created, 0 updated; 1 loans created, 0 updated, 0 unchanged.\n"
    )
    assert loan_row("LOAN-000042")["borrower__full_name"] == "Grace Njeri"


def test_command_refuses_a_missing_file(db, tmp_path):
    with pytest.raises(CommandError, match=r"cannot read .*missing\.csv: No such file or directory"):
        call_command("import_loans", str(tmp_path / "missing.csv"))


def test_command_refuses_a_file_that_is_not_utf8(db, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"{HEADER}\nLOAN-1,Ren\xe9e,0700111222,100,2025-07-01\n".encode("latin-1"))

    with pytest.raises(CommandError, match="is not UTF-8 text"):
        call_command("import_loans", str(path))
    assert_nothing_written()


def test_command_shows_progress_only_for_large_files(db, tmp_path, capsys):
    path = tmp_path / "large.csv"
    lines = [f"LOAN-{n:06d},Grace Njeri,0700111222,100,2025-07-01" for n in range(1000, 2001)]
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")

    call_command("import_loans", str(path))
    large = capsys.readouterr()
    call_command("import_loans", str(FIXTURES / "bom.csv"))
    small = capsys.readouterr()

    assert "Imported 1,001 rows" in large.out
    assert "checking" in large.err
    assert "writing" in large.err
    assert small.err == ""
    assert Loan.objects.count() == 1002
