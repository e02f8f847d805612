"""Writing an M-Pesa payment's row: the one place a payment is stored, whichever road it came by (its
confirmation callback, or a recovery: Pull Transactions, a statement, a Transaction Status answer).

The confirmation's hot path runs through ``payment_insert`` on every payment (``bench/payments.py``).
"""

import functools

from django.db import IntegrityError, connection, transaction

from core.db import column_of, concrete_field, execute_prepared, jsonb_insert_sql, row_json
from payments.models import MpesaConfiguration, MpesaTransaction
from payments.parsing import C2BPayload, normalize_bill_reference


def transaction_values(payload: C2BPayload, config: MpesaConfiguration) -> dict:
    """The values of the ``MpesaTransaction`` row of a parsed confirmation (attribute names)."""
    return {
        "trans_id": payload.trans_id,
        "transaction_type": payload.transaction_type,
        "trans_time": payload.trans_time,
        "amount": payload.amount,
        "business_short_code": payload.business_short_code,
        "bill_reference": payload.bill_reference,
        "bill_reference_normalized": normalize_bill_reference(payload.bill_reference),
        "invoice_number": payload.invoice_number,
        "org_account_balance": payload.org_account_balance,
        "third_party_trans_id": payload.third_party_trans_id,
        "msisdn": payload.msisdn,
        "msisdn_kind": payload.msisdn_kind,
        "first_name": payload.first_name,
        "middle_name": payload.middle_name,
        "last_name": payload.last_name,
        "config_id": config.pk,
    }


def new_transaction(payload: C2BPayload, config: MpesaConfiguration) -> MpesaTransaction:
    """The (unsaved) transaction row for a parsed confirmation."""
    return MpesaTransaction(**transaction_values(payload, config))


def payment_insert(payment: dict) -> bool:
    """Store a payment (its values as ``transaction_values`` gives them, and the raw request) unless
    one with the same ``TransID`` exists. Returns whether it was stored. Raises ``DataError``
    (nothing stored) when a value does not fit its column."""
    if connection.vendor != "postgresql":
        try:
            with transaction.atomic():
                MpesaTransaction(**payment).save(force_insert=True)
        except IntegrityError:
            if not MpesaTransaction.objects.filter(trans_id=payment["trans_id"]).exists():
                raise
            return False
        return True
    # The hot path of every payment: one INSERT, ``ON CONFLICT DO NOTHING`` where the ORM would need
    # a savepoint to catch a duplicate, the row sent as one JSON parameter that the server converts
    # column by column, and the statement prepared once per connection. Each of those replaced
    # something that cost more than the INSERT itself (bench/payments.py). Columns come from the
    # model, so they cannot drift.
    columns, row = row_json(MpesaTransaction, payment)
    with connection.cursor() as cursor:
        execute_prepared(cursor, "haven_payment_insert", _payment_insert_sql(columns), [row])
        return cursor.fetchone() is not None


@functools.cache
def _payment_insert_sql(columns: tuple[str, ...]) -> str:
    trans_id = connection.ops.quote_name(column_of(concrete_field(MpesaTransaction, "trans_id")))
    return jsonb_insert_sql(
        MpesaTransaction, columns, suffix=f"ON CONFLICT ({trans_id}) DO NOTHING RETURNING id"
    )
