"""Transaction Status: staff ask Daraja about an M-Pesa receipt a borrower says they paid with, and
Daraja's answer arrives later at the configuration's result URL.

A completed payment into this paybill that the system lacks is stored (source ``status_query``) and
posted like any payment, then balance gaps are looked for; one it has is confirmed; anything else is
kept as Daraja's answer. The
result request is stored raw first, as a ``CallbackRequest`` (kind ``status-result``), like every
inbound Daraja request.
"""

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import DataError, transaction
from django.utils import timezone

from core.doorbell import task_named
from core.exceptions import InvalidAmount, InvalidInput, InvalidState
from core.models import User
from core.money import to_money
from payments.clients.daraja import DarajaClient, DarajaError
from payments.codes import is_trans_id
from payments.models import CallbackRequest, MpesaConfiguration, MpesaTransaction, StatusQuery
from payments.parsing import MalformedCallback, parse_trans_time, recovered_payload
from payments.services.reconciliation import GAPS_FIND_TASK
from payments.services.recovery import transaction_record_recovered

logger = logging.getLogger(__name__)

# A query for the same receipt made this recently and still waiting is returned instead of asking
# Daraja again (a double click, a retried API call).
PENDING_REUSE = timedelta(minutes=5)
# The emulator accepts any initiator; a local configuration need not be given one.
LOCAL_INITIATOR = ("local-initiator", "local-credential")
RESULT_ACK = {"ResultCode": 0, "ResultDesc": "Accepted"}


def _credentials(config: MpesaConfiguration) -> tuple[str, str]:
    if config.initiator_name and config.security_credential:
        return config.initiator_name, config.security_credential
    if config.environment == MpesaConfiguration.Environment.LOCAL:
        return LOCAL_INITIATOR
    raise InvalidState(
        f"paybill {config.business_short_code} has no initiator and security credential for "
        "Transaction Status queries: set them on its configuration"
    )


def status_query_request(
    *,
    trans_id: str,
    user: User | None,
    config: MpesaConfiguration | None = None,
    client: DarajaClient | None = None,
) -> StatusQuery:
    """Ask Daraja for the status of receipt ``trans_id`` on ``config``'s paybill (default: the active
    one). Returns the query (``sent``; the answer arrives at the result URL later). A query for the
    same receipt still waiting from the last five minutes is returned instead of a new one.

    Raises ``InvalidInput`` for a code that is not an M-Pesa receipt, ``NotFound`` without an active
    configuration, ``InvalidState`` without credentials, and ``DarajaError`` (the query is kept as
    ``refused``) when Daraja refuses or cannot be reached."""
    trans_id = (trans_id or "").strip().upper()
    if not is_trans_id(trans_id):
        raise InvalidInput(f"{trans_id!r} is not an M-Pesa receipt number (e.g. SAB7LQ2X9K)")
    config = config or MpesaConfiguration.get_active_config()
    initiator, credential = _credentials(config)
    waiting = StatusQuery.objects.filter(
        config=config,
        trans_id=trans_id,
        state=StatusQuery.State.SENT,
        requested_at__gte=timezone.now() - PENDING_REUSE,
    ).first()
    if waiting is not None:
        return waiting
    # Committed before Daraja is called: its result may arrive before this function returns.
    query = StatusQuery.objects.create(config=config, trans_id=trans_id, requested_by=user)
    own_client = client is None
    daraja = client or DarajaClient.for_config(config)
    try:
        answer = daraja.transaction_status(
            transaction_id=trans_id,
            short_code=config.business_short_code,
            initiator=initiator,
            security_credential=credential,
            result_url=config.status_result_url,
            queue_timeout_url=config.status_timeout_url,
            occasion=f"haven-{query.pk}",
        )
    except DarajaError as exc:
        StatusQuery.objects.filter(pk=query.pk).update(
            state=StatusQuery.State.REFUSED, error=exc.detail[:1000]
        )
        raise
    finally:
        if own_client:
            daraja.close()
    StatusQuery.objects.filter(pk=query.pk).update(
        conversation_id=str(answer.get("ConversationID", ""))[:64],
        originator_conversation_id=str(answer.get("OriginatorConversationID", ""))[:64],
    )
    query.refresh_from_db()
    logger.info("transaction status of %s asked (query %s)", trans_id, query.pk)
    return query


# --- The result ---------------------------------------------------------------------------------


def _parameters(result: dict[str, Any]) -> dict[str, Any]:
    items = (result.get("ResultParameters") or {}).get("ResultParameter") or []
    if isinstance(items, dict):
        items = [items]
    return {str(item.get("Key")): item.get("Value") for item in items if isinstance(item, dict)}


def _reference(result: dict[str, Any], key: str) -> str:
    items = (result.get("ReferenceData") or {}).get("ReferenceItem") or []
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict) and item.get("Key") == key:
            return str(item.get("Value") or "")
    return ""


def _find_query(config: MpesaConfiguration, result: dict[str, Any]) -> StatusQuery | None:
    queries = StatusQuery.objects.select_for_update().filter(config=config)
    conversation_id = str(result.get("ConversationID") or "")
    if conversation_id:
        found = queries.filter(conversation_id=conversation_id).first()
        if found is not None:
            return found
    # The result can come before the acknowledgement was saved: the query's id travels as Occasion.
    occasion = _reference(result, "Occasion")
    if occasion.startswith("haven-") and occasion[6:].isdigit():
        return queries.filter(pk=int(occasion[6:])).first()
    return None


def _payer(debit_party: str) -> tuple[str, str]:
    number, _, names = debit_party.partition(" - ")
    return number.strip(), names.strip()


def _settle(query: StatusQuery, config: MpesaConfiguration, result: dict[str, Any], raw: str) -> None:
    """Record Daraja's answer on ``query`` and, for a completed pay-in to this paybill that the
    system lacks, store the payment."""
    parameters = _parameters(result)
    query.state = StatusQuery.State.ANSWERED
    query.answered_at = timezone.now()
    query.result_code = str(result.get("ResultCode", ""))
    query.result_description = str(result.get("ResultDesc", ""))[:1000]
    # Amounts stay exact: as text, as everywhere money leaves Python.
    query.answer = {
        key: str(value) if isinstance(value, Decimal) else value for key, value in parameters.items()
    }
    receipt = str(parameters.get("ReceiptNo") or "").strip().upper()
    completed = str(parameters.get("TransactionStatus", "")).strip().lower() == "completed"
    to_us = str(parameters.get("CreditPartyName", "")).split(" - ")[0].strip() == config.business_short_code
    if query.result_code != "0":
        query.outcome = StatusQuery.Outcome.NOT_FOUND
    elif not (completed and to_us and receipt == query.trans_id):
        query.outcome = StatusQuery.Outcome.NOT_A_PAYMENT
    else:
        msisdn, names = _payer(str(parameters.get("DebitPartyName", "")))
        try:
            amount = to_money(str(parameters.get("Amount", "")))
            payload = recovered_payload(
                trans_id=receipt,
                trans_time=parse_trans_time(
                    str(parameters.get("FinalisedTime") or parameters.get("InitiatedTime"))
                ),
                amount=amount,
                business_short_code=config.business_short_code,
                msisdn=msisdn,
                names=names,
            )
            # Its own savepoint: a value the database refuses must not take the stored answer with it.
            with transaction.atomic():
                created = transaction_record_recovered(
                    config=config,
                    payload=payload,
                    source=MpesaTransaction.Source.STATUS_QUERY,
                    evidence=json.loads(raw, parse_float=Decimal),
                )
        except (MalformedCallback, InvalidAmount, DataError) as exc:
            query.outcome = StatusQuery.Outcome.NOT_A_PAYMENT
            query.error = f"the answer describes no payment this system can record: {exc}"[:1000]
        else:
            query.outcome = StatusQuery.Outcome.CREATED if created else StatusQuery.Outcome.CONFIRMED
            if created:
                # In a task once the answer is committed: the scan reads days of payments, which is no
                # work for the request answering Daraja. A lost task is made good by the next road's scan.
                transaction.on_commit(partial(_gaps_find_later, config.pk), robust=True)
    query.save()


def _gaps_find_later(config_id: int) -> None:
    task_named(GAPS_FIND_TASK).delay(config_id)


def status_result_receive(
    config: MpesaConfiguration, body: bytes, store: Callable[..., CallbackRequest]
) -> tuple[int, dict]:
    """Handle a Transaction Status result (``store(outcome=..., result_code=..., error=...)`` keeps
    the raw request). Returns the HTTP status and body to answer Daraja with."""
    raw = body.decode("utf-8", errors="backslashreplace")
    try:
        document = json.loads(raw, parse_float=Decimal)
    except ValueError:
        document = None
    result = document.get("Result") if isinstance(document, dict) else None
    if not isinstance(result, dict):
        store(
            outcome=CallbackRequest.Outcome.MALFORMED,
            result_code="400",
            error="not a Transaction Status result",
        )
        return 400, {"ResultCode": 1, "ResultDesc": "Rejected: not a Transaction Status result"}
    with transaction.atomic():
        query = _find_query(config, result)
        code = str(result.get("ResultCode", ""))
        if query is None:
            store(
                outcome=CallbackRequest.Outcome.REJECTED,
                result_code=code,
                error="no query of ours has this id",
            )
            logger.warning("transaction status result for no query of ours")
        elif query.state == StatusQuery.State.ANSWERED:
            store(outcome=CallbackRequest.Outcome.DUPLICATE, result_code=code)
        else:
            store(outcome=CallbackRequest.Outcome.ACCEPTED, result_code=code)
            _settle(query, config, result, raw)
            logger.info("transaction status of %s answered: %s", query.trans_id, query.outcome)
    return 200, dict(RESULT_ACK)


def status_timeout_receive(
    config: MpesaConfiguration, body: bytes, store: Callable[..., CallbackRequest]
) -> tuple[int, dict]:
    """Daraja gave up on a query (its queue timed out): the query is marked so, the request kept."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    result = document.get("Result", document) if isinstance(document, dict) else None
    with transaction.atomic():
        query = _find_query(config, result) if isinstance(result, dict) else None
        store(
            outcome=CallbackRequest.Outcome.ACCEPTED if query else CallbackRequest.Outcome.REJECTED,
            result_code="",
            error="" if query else "no query of ours has this id",
        )
        if query is not None and query.state == StatusQuery.State.SENT:
            query.state = StatusQuery.State.TIMED_OUT
            query.save(update_fields=["state"])
    return 200, dict(RESULT_ACK)
