"""Payments that reach the books by a second road: Pull Transactions, a statement import, a
Transaction Status result. Daraja does not retry a confirmation it failed to deliver, so every road
ends here, in one function that stores the payment exactly as a confirmation would have (same
fields, same idempotency on ``TransID``, same doorbell): matching, posting and receipts are the
engine's own, and a confirmation that turns up later is a duplicate.
"""

import json
import logging
from typing import Any

from django.db import transaction

from payments.models import MpesaConfiguration, MpesaTransaction
from payments.parsing import C2BPayload
from payments.services.doorbell import ring_doorbell
from payments.services.storing import payment_insert, transaction_values

logger = logging.getLogger(__name__)


def transaction_record_recovered(
    *, config: MpesaConfiguration, payload: C2BPayload, source: str, evidence: dict[str, Any]
) -> bool:
    """Store a payment found by ``source`` (``pull``, ``statement``, ``status_query``) unless the
    system already has its ``TransID``; ``evidence`` (what the road said about it: a pull row, a
    statement line, a status result) is kept as the payment's raw body. Returns whether it was
    created; a created payment is matched and posted by the workers like any other. Raises
    ``ValueError`` for an unknown source and ``DataError`` when a value does not fit its column."""
    if source not in MpesaTransaction.Source.values or source == MpesaTransaction.Source.CALLBACK:
        raise ValueError(f"{source!r} is not a recovery source")

    values = transaction_values(payload, config)
    values.update(source=source, raw_body=json.dumps(evidence, default=str, sort_keys=True))
    # The confirmation's own INSERT (ON CONFLICT DO NOTHING on PostgreSQL): a payment recovered
    # while its confirmation arrives is stored once, by whichever comes first.
    created = payment_insert(values)
    if created:
        transaction.on_commit(ring_doorbell, robust=True)
        # A statement brings thousands at once (its import sums them up in one line); a pull or a
        # status query a few, each worth a line.
        level = logging.DEBUG if source == MpesaTransaction.Source.STATEMENT else logging.INFO
        logger.log(level, "mpesa payment %s recovered by %s", payload.trans_id, source)
    return created
