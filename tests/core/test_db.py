"""The statement helpers of hot paths: held to what the ORM itself would write."""

import datetime
from decimal import Decimal as D

import pytest
from django.db import DatabaseError, connection
from psycopg2.extras import Inet, Json

from core.db import execute_prepared, insert_params
from payments.models import CallbackRequest, MpesaTransaction
from payments.parsing import parse_c2b_body
from payments.services.callbacks import transaction_values
from tests.factories import MpesaConfigurationFactory
from tests.payments.conftest import FIXTURES

pytestmark = pytest.mark.django_db

NAIROBI = datetime.timezone(datetime.timedelta(hours=3))


@pytest.fixture
def config():
    return MpesaConfigurationFactory()


def orm_params(obj, exclude=()):
    fields = [f for f in type(obj)._meta.concrete_fields if not f.primary_key and f.name not in exclude]
    return [f.column for f in fields], [
        f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields
    ]


def comparable(value):
    # psycopg2's adapters (JSON, inet) compare by what they hold.
    if isinstance(value, Json):
        return ("json", value.adapted)
    if isinstance(value, Inet):
        return ("inet", value.addr)
    return value


def same_params(model, values, exclude=()):
    columns, params = insert_params(model, values, exclude=exclude)
    orm_columns, orm = orm_params(model(**values), exclude)
    assert list(columns) == orm_columns
    now_columns = {f.column for f in model._meta.concrete_fields if getattr(f, "auto_now_add", False)}
    now_columns |= {"next_attempt_at"}  # default=timezone.now: a call apart
    for column, mine, theirs in zip(columns, params, orm, strict=True):
        if column in now_columns:
            if isinstance(mine, str):  # SQLite takes datetimes as text
                mine, theirs = datetime.datetime.fromisoformat(mine), datetime.datetime.fromisoformat(theirs)
            assert abs(mine - theirs) < datetime.timedelta(seconds=5), column
        else:
            assert comparable(mine) == comparable(theirs), column
            assert type(mine) is type(theirs), column


def test_insert_params_prepare_a_payment_as_the_orm_does(config):
    payload = parse_c2b_body((FIXTURES / "confirmation_hashed.json").read_bytes())
    same_params(MpesaTransaction, transaction_values(payload, config), exclude=("callback",))


def test_insert_params_prepare_every_kind_of_field_as_the_orm_does(config):
    # Set values for fields the confirmation leaves to their defaults: None, ints, JSON, datetimes.
    values = {
        **transaction_values(parse_c2b_body((FIXTURES / "confirmation_masked.json").read_bytes()), config),
        "status": MpesaTransaction.Status.FAILED,
        "notes": ["tried the bill reference", {"nested": D("1.50").__str__()}],
        "attempts": 3,
        "processed_at": datetime.datetime(2026, 12, 1, 8, 0, tzinfo=NAIROBI),
        "processing_ms": 42,
        "last_error": "boom",
        "borrower_id": None,
    }
    same_params(MpesaTransaction, values, exclude=("callback",))
    same_params(
        CallbackRequest,
        {
            "kind": CallbackRequest.Kind.CONFIRMATION,
            "config_id": config.pk,
            "source_ip": "196.201.214.200",
            "headers": {"Content-Type": "application/json"},
            "body": '{"TransID": "RKL51ZDR4F"}',
            "outcome": CallbackRequest.Outcome.ACCEPTED,
            "result_code": "0",
        },
    )


def test_a_value_that_needs_converting_still_goes_through_its_field(config):
    values = transaction_values(parse_c2b_body((FIXTURES / "confirmation_hashed.json").read_bytes()), config)
    values["amount"] = "1500.5"  # text for a DecimalField
    _, params = insert_params(MpesaTransaction, values, exclude=("callback",))
    assert D("1500.5") in params


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
