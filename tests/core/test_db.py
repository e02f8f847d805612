"""The statement helpers of hot paths: held to what the ORM itself would write."""

import datetime
import json
from decimal import Decimal as D

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from core.db import create_row, execute_prepared, jsonb_insert_sql, row_json, save_fields
from payments.models import CallbackRequest, MpesaTransaction
from payments.parsing import parse_c2b_body
from payments.services.storing import transaction_values
from tests.factories import MpesaConfigurationFactory
from tests.payments.conftest import FIXTURES

pytestmark = pytest.mark.django_db

NAIROBI = datetime.timezone(datetime.timedelta(hours=3))


@pytest.fixture
def config():
    return MpesaConfigurationFactory()


def stored(model, pk) -> dict:
    row = model.objects.filter(pk=pk).values().get()
    del row["id"]
    return row


def same_row(model, values, **changes):
    """Write ``values`` with row_json and with the ORM; both rows must read back the same."""
    columns, row = row_json(model, values)
    with connection.cursor() as cursor:
        cursor.execute(jsonb_insert_sql(model, columns, suffix="RETURNING id"), [row])
        mine = stored(model, cursor.fetchone()[0])
    theirs = stored(model, model.objects.create(**{**values, **changes}).pk)
    now_columns = {"received_at", "next_attempt_at"}  # the time of the INSERT: a call apart
    for column in now_columns & mine.keys():
        assert abs(mine.pop(column) - theirs.pop(column)) < datetime.timedelta(seconds=5), column
    assert mine == {**theirs, **{k: mine[k] for k in changes}}
    assert [type(v) for v in mine.values()] == [type(v) for v in theirs.values()]
    return mine


@pytest.mark.postgres("jsonb_populate_record")
def test_a_confirmation_row_from_json_is_the_row_the_orm_writes(config):
    payload = parse_c2b_body((FIXTURES / "confirmation_hashed.json").read_bytes())
    values = {
        **transaction_values(payload, config),
        "source_ip": "196.201.214.200",
        "raw_headers": {"Content-Type": "application/json", "X-Forwarded-For": ["a", "b"]},
        "raw_body": '{"TransID": "RKL51ZDR4F", "FirstName": "Wanjikũ \\u00e9"}',
    }
    row = same_row(MpesaTransaction, values, trans_id="RKL51ZDR4G")
    assert row["amount"] == D("1500.00") and row["org_account_balance"] == D("25430.00")
    assert row["trans_time"] == datetime.datetime(2023, 11, 21, 9, 13, 25, tzinfo=datetime.UTC)
    assert row["status"] == "received" and row["notes"] == [] and row["attempts"] == 0


@pytest.mark.postgres("jsonb_populate_record")
def test_every_kind_of_field_from_json_is_what_the_orm_writes(config, admin_user):
    values = {
        **transaction_values(parse_c2b_body((FIXTURES / "confirmation_masked.json").read_bytes()), config),
        "status": MpesaTransaction.Status.FAILED,
        "notes": ["tried the bill reference", {"nested": "1.50", "n": 2, "t": True, "none": None}],
        "attempts": 3,
        "processed_at": datetime.datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=NAIROBI),
        "processing_ms": 2.873,
        "last_error": "boom",
        "borrower_id": None,
        "reviewed_by_id": admin_user.pk,
        "org_account_balance": None,
        "amount": D("0.01"),
        "source_ip": "2001:db8::1",
        "raw_body": "",
    }
    same_row(MpesaTransaction, values, trans_id="RKL51ZDR4H")
    same_row(
        CallbackRequest,
        {
            "kind": CallbackRequest.Kind.CONFIRMATION,
            "config_id": config.pk,
            "source_ip": None,
            "headers": {},
            "body": r"not json, \x00 as text",
            "outcome": CallbackRequest.Outcome.MALFORMED,
            "result_code": "400",
            "error": "body is not JSON",
        },
    )


def test_what_json_cannot_carry_is_refused_before_anything_is_sent(config):
    from payments.models import MpesaConfiguration

    with pytest.raises(TypeError, match="consumer_key"):  # encrypted: prepared its own way
        row_json(MpesaConfiguration, {})
    values = transaction_values(parse_c2b_body((FIXTURES / "confirmation_hashed.json").read_bytes()), config)
    with pytest.raises(ValueError, match="naive"):
        row_json(MpesaTransaction, {**values, "trans_time": datetime.datetime(2026, 1, 1, 8, 0)})  # noqa: DTZ001
    with pytest.raises(ValueError, match="NaN"):
        row_json(MpesaTransaction, {**values, "amount": D("NaN")})
    with pytest.raises(TypeError, match="no field 'callback'"):
        row_json(MpesaTransaction, {**values, "callback": None})


def test_auto_now_columns_take_the_time_of_the_insert(config):
    values = transaction_values(parse_c2b_body((FIXTURES / "confirmation_hashed.json").read_bytes()), config)
    long_ago = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    _, row = row_json(MpesaTransaction, {**values, "received_at": long_ago})
    received = datetime.datetime.fromisoformat(json.loads(row)["received_at"])
    assert abs(received - timezone.now()) < datetime.timedelta(seconds=5)


@pytest.mark.postgres("server-side prepared statements")
@pytest.mark.django_db(transaction=True)
def test_a_prepared_statement_is_prepared_again_when_the_server_forgot_it(settings):
    settings.DB_PREPARED_STATEMENTS = True
    sql = "SELECT %s::int + %s::int"
    with connection.cursor() as cursor:
        execute_prepared(cursor, "haven_test_sum", sql, [1, 2])
        assert cursor.fetchone() == (3,)
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'haven_test_sum'")
        assert cursor.fetchone() == (1,)
        cursor.execute("DEALLOCATE ALL")  # as a pooler's DISCARD ALL would
        execute_prepared(cursor, "haven_test_sum", sql, [20, 22])
        assert cursor.fetchone() == (42,)


@pytest.mark.postgres("server-side prepared statements")
@pytest.mark.django_db(transaction=True)
def test_a_forgotten_statement_inside_a_transaction_fails_once_then_works(settings):
    from django.db import transaction

    settings.DB_PREPARED_STATEMENTS = True
    sql = "SELECT %s::int * 2"
    with connection.cursor() as cursor:
        execute_prepared(cursor, "haven_test_double", sql, [1])
        cursor.execute("DEALLOCATE ALL")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        execute_prepared(cursor, "haven_test_double", sql, [2])
    with transaction.atomic(), connection.cursor() as cursor:
        execute_prepared(cursor, "haven_test_double", sql, [3])
        assert cursor.fetchone() == (6,)


@pytest.mark.postgres("server-side prepared statements")
@pytest.mark.django_db(transaction=True)
def test_prepared_statements_can_be_turned_off(settings):
    settings.DB_PREPARED_STATEMENTS = False
    with connection.cursor() as cursor:
        execute_prepared(cursor, "haven_test_off", "SELECT %s::int", [7])
        assert cursor.fetchone() == (7,)
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'haven_test_off'")
        assert cursor.fetchone() == (0,)


@pytest.mark.postgres("server-side prepared statements")
@pytest.mark.django_db(transaction=True)
def test_a_new_connection_prepares_its_statements_afresh(settings):
    from django.db import transaction

    settings.DB_PREPARED_STATEMENTS = True
    sql = "SELECT %s::int - 1"
    with connection.cursor() as cursor:
        execute_prepared(cursor, "haven_test_decrement", sql, [1])
    connection.close()  # the server forgets the session's statements
    # Inside a transaction a stale "already prepared" could not be retried: it would raise.
    with transaction.atomic(), connection.cursor() as cursor:
        execute_prepared(cursor, "haven_test_decrement", sql, [43])
        assert cursor.fetchone() == (42,)


@pytest.mark.postgres("server-side prepared statements")
def test_save_fields_writes_what_save_with_update_fields_writes(config):
    from core.models import Loan
    from tests.factories import LoanFactory

    mine, theirs = LoanFactory(principal=D("900.00")), LoanFactory(principal=D("900.00"))
    for loan in (mine, theirs):
        loan.principal, loan.status, loan.paid_at = D("0.00"), Loan.Status.PAID, timezone.now()
        loan.fees = D("12.34")  # changed but not listed: neither writes it
    before = timezone.now()
    save_fields(mine, ["principal", "status", "paid_at", "updated_at"])
    theirs.save(update_fields=["principal", "status", "paid_at", "updated_at"])

    got, want = (Loan.objects.filter(pk=loan.pk).values().get() for loan in (mine, theirs))
    assert got["updated_at"] >= before and mine.updated_at == got["updated_at"]  # auto_now, as save()
    for row in (got, want):
        for column in ("id", "loan_number", "borrower_id", "created_at", "updated_at", "paid_at"):
            row.pop(column)
    assert got == want and got["fees"] != D("12.34") and got["status"] == "paid"


@pytest.mark.postgres("server-side prepared statements")
def test_create_row_writes_what_create_writes_and_returns_the_stored_row(config):
    from core.models import AuditEvent
    from tests.factories import LoanFactory

    loan = LoanFactory()
    values = {
        "actor_type": "system",
        "actor_label": "mpesa-engine",
        "action": "repayment.posted",
        "loan": loan,
        "borrower_id": loan.borrower_id,
        "object_type": "repayment",
        "object_id": "7",
        "amount": D("1500.50"),
        "data": {"reference": "RKL51ZDR4F", "split": {"fees": "250.00"}, "n": 2},
    }
    mine = create_row(AuditEvent, **values)
    theirs = AuditEvent.objects.create(**values)

    got, want = (AuditEvent.objects.filter(pk=event.pk).values().get() for event in (mine, theirs))
    assert got["id"] == mine.pk and got["created_at"] == mine.created_at
    for row in (got, want):
        row.pop("id"), row.pop("created_at")
    assert got == want
