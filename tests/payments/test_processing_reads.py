"""The locking reads every posted payment makes, written out in SQL (payments.services.processing):
held to the ORM queries they replace, field by field, and to the row locks those took."""

import datetime
import threading
from decimal import Decimal as D

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.actors import Actor
from core.db import Columns
from core.models import Borrower, BorrowerPhone, Loan
from core.services import borrower_credit_add
from payments.models import Allocation, MpesaTransaction
from payments.parsing import NAIROBI
from payments.services import processing
from tests.factories import BorrowerFactory, LoanFactory, MpesaConfigurationFactory, OfficerFactory

pytestmark = pytest.mark.django_db


def every_field(instance, *, leave_out=()) -> dict:
    return {
        f.attname: getattr(instance, f.attname)
        for f in type(instance)._meta.concrete_fields
        if f.name not in leave_out
    }


def same_values(mine: dict, theirs: dict) -> None:
    assert mine == theirs
    # The same Python types as the ORM gives (Decimal not float, aware datetimes, parsed JSON).
    assert {k: type(v) for k, v in mine.items()} == {k: type(v) for k, v in theirs.items()}


@pytest.fixture
def payment():
    config = MpesaConfigurationFactory(amount_tolerance=D("10.00"))
    return MpesaTransaction.objects.create(
        trans_id="RKL51ZDR4F",
        transaction_type="Pay Bill",
        trans_time=datetime.datetime(2026, 11, 20, 12, 13, 25, tzinfo=NAIROBI),
        amount=D("1500.50"),
        business_short_code=config.business_short_code,
        bill_reference="loan 5594",
        msisdn="254722000000",
        msisdn_kind="plain",
        first_name="NICHOLAS",
        notes=["attempt 1 failed: database busy", {"nested": [1, "two"]}],
        raw_headers={"Content-Type": "application/json"},
        raw_body='{"TransID": "RKL51ZDR4F"}',
        config=config,
    )


def test_the_payment_is_read_as_the_orm_reads_it_without_its_raw_request(payment):
    with transaction.atomic():
        tx, live = processing._payment_locked("RKL51ZDR4F")
    orm = MpesaTransaction.objects.get(pk=payment.pk)

    same_values(
        every_field(tx, leave_out=("raw_body", "raw_headers")),
        every_field(orm, leave_out=("raw_body", "raw_headers")),
    )
    assert tx.notes == ["attempt 1 failed: database busy", {"nested": [1, "two"]}]
    assert tx.trans_time.utcoffset() == datetime.timedelta(0) and tx.amount == D("1500.50")
    assert live is False
    assert tx.get_deferred_fields() == {"raw_body", "raw_headers"}
    assert tx.raw_body == '{"TransID": "RKL51ZDR4F"}'  # loads on access, should anything ask


def test_the_paybill_comes_with_the_two_fields_processing_reads_and_no_secret(payment):
    processing._payment_locked("RKL51ZDR4F")  # prepared on PostgreSQL: PREPARE is a query of its own
    with CaptureQueriesContext(connection) as queries:
        tx, _ = processing._payment_locked("RKL51ZDR4F")
        assert tx.config.business_short_code == payment.config.business_short_code
        assert tx.config.amount_tolerance == D("10.00")
    assert len(queries) == 1
    assert "consumer_secret" in tx.config.get_deferred_fields()
    assert "consumer_secret" not in queries.captured_queries[0]["sql"]
    assert tx.config.consumer_secret == payment.config.consumer_secret  # deferred, decrypted on access


def test_live_allocations_count_and_reversed_ones_do_not(payment):
    borrower = BorrowerFactory()
    entry = borrower_credit_add(borrower=borrower, amount=D("1.00"), actor=Actor.system("test"))
    allocation = Allocation.objects.create(
        transaction=payment,
        target=Allocation.Target.CREDIT,
        borrower=borrower,
        amount=D("1.00"),
        credit_entry=entry,
    )
    assert processing._payment_locked("RKL51ZDR4F")[1] is True
    allocation.reversed_at = timezone.now()
    allocation.save()
    assert processing._payment_locked("RKL51ZDR4F")[1] is False


def test_an_unknown_payment_is_does_not_exist(payment):
    with pytest.raises(MpesaTransaction.DoesNotExist):
        processing._payment_locked("NOSUCH0000")


def test_the_borrower_comes_with_their_officer_and_primary_number():
    officer = OfficerFactory(phone="+254700111222")
    borrower = BorrowerFactory(phones=["+254722000001", "+254722000002"], loan_officer=officer)
    BorrowerPhone.objects.filter(number="+254722000001").update(is_primary=False)
    BorrowerPhone.objects.filter(number="+254722000002").update(is_primary=True)
    processing._borrower_locked(borrower.pk)  # prepared on PostgreSQL: PREPARE is a query of its own

    with CaptureQueriesContext(connection) as queries:
        mine, number = processing._borrower_locked(borrower.pk)
        officer_read = mine.loan_officer
    assert len(queries) == 1  # the officer came with the borrower
    orm = Borrower.objects.select_related("loan_officer").get(pk=borrower.pk)
    same_values(every_field(mine), every_field(orm))
    same_values(every_field(officer_read), every_field(orm.loan_officer))
    assert number == "+254722000002" == orm.primary_phone.number


def test_a_borrower_without_officer_or_phone_costs_no_second_query():
    borrower = BorrowerFactory(phones=[], loan_officer=None)
    processing._borrower_locked(borrower.pk)  # prepared on PostgreSQL: PREPARE is a query of its own
    with CaptureQueriesContext(connection) as queries:
        mine, number = processing._borrower_locked(borrower.pk)
        assert mine.loan_officer is None
    assert len(queries) == 1 and number is None


def test_an_unknown_borrower_is_does_not_exist():
    with pytest.raises(Borrower.DoesNotExist):
        processing._borrower_locked(987654)


def test_the_active_loans_in_id_order_as_the_orm_reads_them():
    borrower = BorrowerFactory()
    loans = [LoanFactory(borrower=borrower, principal=D(f"{n}00.00")) for n in (3, 1, 2)]
    paid_off = {"principal": 0, "interest": 0, "fees": 0, "penalties": 0, "paid_at": timezone.now()}
    Loan.objects.filter(pk=loans[1].pk).update(status=Loan.Status.PAID, **paid_off)
    LoanFactory()  # someone else's

    mine = processing._active_loans_locked(borrower.pk)
    orm = list(Loan.objects.filter(borrower=borrower, status=Loan.Status.ACTIVE).order_by("id"))
    assert [loan.pk for loan in mine] == [loans[0].pk, loans[2].pk]
    for got, want in zip(mine, orm, strict=True):
        same_values(every_field(got), every_field(want))


def test_columns_refuse_to_leave_out_the_key_or_a_field_the_model_lacks():
    with pytest.raises(TypeError, match="id"):
        Columns(Loan, "l", exclude=("id",))
    with pytest.raises(TypeError, match="nonsense"):
        Columns(Loan, "l", exclude=("nonsense",))


@pytest.mark.postgres("row locks")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("read", ["payment", "borrower", "loans"])
def test_each_read_locks_its_rows_until_the_transaction_ends(read):
    config = MpesaConfigurationFactory()
    borrower = BorrowerFactory()
    loan = LoanFactory(borrower=borrower)
    MpesaTransaction.objects.create(
        trans_id="RKL51ZDR4F",
        trans_time=timezone.now(),
        amount=D("10.00"),
        business_short_code=config.business_short_code,
        msisdn_kind="missing",
        config=config,
    )
    reads = {
        "payment": (
            lambda: processing._payment_locked("RKL51ZDR4F"),
            "payments_mpesatransaction",
            "trans_id = 'RKL51ZDR4F'",
        ),
        "borrower": (
            lambda: processing._borrower_locked(borrower.pk),
            "core_borrower",
            f"id = {borrower.pk}",
        ),
        "loans": (lambda: processing._active_loans_locked(borrower.pk), "core_loan", f"id = {loan.pk}"),
    }
    run, table, where = reads[read]
    outcome: list[str] = []

    def try_to_lock() -> None:
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute(f"SELECT 1 FROM {table} WHERE {where} FOR UPDATE NOWAIT")
            outcome.append("locked it")
        except OperationalError:
            outcome.append("refused")
        finally:
            connections["default"].close()

    with transaction.atomic():
        run()
        other = threading.Thread(target=try_to_lock)
        other.start()
        other.join(timeout=10)
    after = threading.Thread(target=try_to_lock)
    after.start()
    after.join(timeout=10)
    assert outcome == ["refused", "locked it"]


def test_columns_of_only_some_fields_must_name_the_key_and_real_fields():
    assert Columns(Loan, "l", only=("id", "status")).width == 2
    with pytest.raises(TypeError, match="id"):
        Columns(Loan, "l", only=("status",))
    with pytest.raises(TypeError, match="nonsense"):
        Columns(Loan, "l", only=("id", "nonsense"))
