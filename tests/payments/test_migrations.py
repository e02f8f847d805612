"""Data migrations run against rows shaped as the schema before them."""

import datetime
from decimal import Decimal as D

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("payments", "0006_trans_id_unique_constraint")]
AFTER = [("payments", "0007_raw_request_on_transaction")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_payments_take_the_raw_request_of_their_callback():
    old = migrate(BEFORE)
    try:
        config = old.get_model("payments", "MpesaConfiguration").objects.create(
            business_short_code="600984", base_url="https://pay.haven.example", callback_token_digest="d" * 64
        )
        callback = old.get_model("payments", "CallbackRequest").objects.create(
            kind="confirmation",
            config=config,
            source_ip="196.201.214.200",
            headers={"Content-Type": "application/json"},
            body='{"TransID": "RKL51ZDR4F"}',
            outcome="accepted",
        )
        payment = dict(
            transaction_type="Pay Bill",
            trans_time=datetime.datetime(2026, 11, 20, 9, 0, tzinfo=datetime.UTC),
            amount=D("100.00"),
            business_short_code="600984",
            msisdn_kind="missing",
            config=config,
        )
        transactions = old.get_model("payments", "MpesaTransaction").objects
        transactions.create(trans_id="RKL51ZDR4F", callback=callback, **payment)
        transactions.create(trans_id="RKL51ZDR5G", **payment)  # entered another way: no callback

        new = migrate(AFTER)

        rows = new.get_model("payments", "MpesaTransaction").objects.order_by("trans_id")
        assert [(tx.source_ip, tx.raw_headers, tx.raw_body) for tx in rows] == [
            ("196.201.214.200", {"Content-Type": "application/json"}, '{"TransID": "RKL51ZDR4F"}'),
            (None, {}, ""),
        ]
        # The request itself stays on record.
        assert new.get_model("payments", "CallbackRequest").objects.get().body == '{"TransID": "RKL51ZDR4F"}'
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
