"""Daraja C2B callbacks: store the request as it came, answer Safaricom, hand the payment to a worker.

The hot path of a confirmation is two inserts (the raw request, the transaction) in one commit and
a task enqueued after it; matching and posting happen in ``payments.tasks``. The transaction row
is the durable record: if the enqueue is lost, the sweeper finds the row still ``received``.
"""

import functools
import logging
import time
from dataclasses import dataclass

from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from core.db import column_of, concrete_field, execute_prepared, insert_params
from core.services.outbox import outbox_queue_for_staff, staff_to_alert
from payments.matching import IDENTIFIERS
from payments.models import CallbackRequest, MpesaConfiguration, MpesaTransaction, callback_token_digest
from payments.parsing import C2BPayload, MalformedCallback, normalize_bill_reference, parse_c2b_body
from payments.selectors import DatabaseDirectory
from payments.services.processing import payment_facts

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
ACCEPTED = {"ResultCode": "0", "ResultDesc": "Accepted"}
CONFIRMED = {"ResultCode": 0, "ResultDesc": "Success"}
_HIDDEN_HEADERS = {"cookie", "authorization", "proxy-authorization"}


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    status: int
    body: dict


@dataclass(frozen=True, slots=True)
class InboundRequest:
    kind: str
    token: str
    source_ip: str | None
    headers: dict
    body: bytes
    declared_length: int | None = None  # Content-Length, when the body was not read for being too large


def _reject(code: str, description: str) -> CallbackAnswer:
    return CallbackAnswer(200, {"ResultCode": code, "ResultDesc": description})


# Active configurations by callback token, per process, for a few seconds: looking the row up on
# every callback was a quarter of a confirmation's cost. Deactivating a configuration or changing
# its token therefore takes up to CONFIG_CACHE_SECONDS to reach every web process. Only tokens that
# exist are kept, so guessing tokens cannot grow it.
CONFIG_CACHE_SECONDS = 5.0
_configs: dict[str, tuple[float, MpesaConfiguration]] = {}


def config_for_token(token: str) -> MpesaConfiguration | None:
    """The active configuration whose callback token is ``token``, found by the token's digest (the
    token itself is stored encrypted), without its credentials (callbacks never need them)."""
    now = time.monotonic()
    cached = _configs.get(token)
    if cached is not None and cached[0] > now:
        return cached[1]
    config = (
        MpesaConfiguration.objects.filter(callback_token_digest=callback_token_digest(token), is_active=True)
        .defer("consumer_key", "consumer_secret")
        .first()
    )
    if config is None:
        _configs.pop(token, None)
        return None
    _configs[token] = (now + CONFIG_CACHE_SECONDS, config)
    return config


def config_cache_clear() -> None:
    _configs.clear()


def _callback_values(config: MpesaConfiguration, inbound: InboundRequest, **fields) -> dict:
    """The values of a ``CallbackRequest`` row for ``inbound`` (attribute names), ``fields`` included."""
    return {
        "kind": inbound.kind,
        "config_id": config.pk,
        "source_ip": inbound.source_ip,
        "headers": {k: v for k, v in inbound.headers.items() if k.lower() not in _HIDDEN_HEADERS},
        "body": inbound.body.decode("utf-8", errors="backslashreplace"),
        **fields,
    }


def _store(config: MpesaConfiguration, inbound: InboundRequest, **fields) -> CallbackRequest:
    callback = CallbackRequest(**_callback_values(config, inbound, **fields))
    callback.save(force_insert=True)
    return callback


def _source_allowed(config: MpesaConfiguration, inbound: InboundRequest) -> bool:
    return config.ip_policy == MpesaConfiguration.IpPolicy.OFF or inbound.source_ip in config.allowed_ip_list


def _alert_unlisted_source(config: MpesaConfiguration, inbound: InboundRequest) -> None:
    logger.warning("mpesa %s callback from unlisted address %s", inbound.kind, inbound.source_ip)
    refused = config.ip_policy == MpesaConfiguration.IpPolicy.REFUSE
    outbox_queue_for_staff(
        users=staff_to_alert(),
        body=(
            f"M-Pesa {inbound.kind} callback from an address not on the allowed list: {inbound.source_ip} "
            f"({'refused' if refused else 'accepted, logged'})."
        ),
        dedupe_key=f"callback-ip:{inbound.source_ip}:{timezone.localdate().isoformat()}",
        context={"kind": "callback_ip", "source_ip": inbound.source_ip},
    )


def callback_receive(*, inbound: InboundRequest) -> CallbackAnswer | None:
    """Handle one validation or confirmation request. Returns the answer for Safaricom, or ``None`` when
    the token is unknown (the caller answers 404 and nothing is stored)."""
    config = config_for_token(inbound.token)
    if config is None:
        logger.warning("mpesa callback with an unknown token from %s", inbound.source_ip)
        return None
    if inbound.declared_length is not None:
        error = f"body of {inbound.declared_length} bytes is over the {MAX_BODY_BYTES // 1024} KB limit"
        _store(config, inbound, outcome=CallbackRequest.Outcome.MALFORMED, result_code="413", error=error)
        return CallbackAnswer(413, {"ResultCode": "C2B00016", "ResultDesc": f"Rejected: {error}"})
    if not _source_allowed(config, inbound):
        with transaction.atomic():
            _alert_unlisted_source(config, inbound)
            if config.ip_policy == MpesaConfiguration.IpPolicy.REFUSE:
                _store(
                    config,
                    inbound,
                    outcome=CallbackRequest.Outcome.REFUSED,
                    result_code="403",
                    error="source address not allowed",
                )
                return CallbackAnswer(
                    403, {"ResultCode": "C2B00016", "ResultDesc": "Rejected: source address not allowed"}
                )
    if inbound.kind == CallbackRequest.Kind.VALIDATION:
        return _validate(config, inbound)
    return _confirm(config, inbound)


def _parse(inbound: InboundRequest) -> tuple[C2BPayload | None, str]:
    try:
        return parse_c2b_body(inbound.body), ""
    except MalformedCallback as exc:
        return None, exc.detail
    except Exception as exc:
        # A payload that breaks the parser is still evidence: store it, say so, carry on.
        logger.exception("mpesa %s callback broke the parser", inbound.kind)
        return None, f"unreadable payload ({type(exc).__name__})"


def _validate(config: MpesaConfiguration, inbound: InboundRequest) -> CallbackAnswer:
    """Read-only and fast: no money moves here; confirmation is the source of truth."""
    payload, error = _parse(inbound)
    if payload is None:
        answer = _reject("C2B00016", f"Rejected: {error}")
    elif payload.business_short_code != config.business_short_code:
        answer = _reject("C2B00015", "Rejected: invalid short code")
    elif payload.amount <= 0:
        answer = _reject("C2B00013", "Rejected: invalid amount")
    elif (
        config.validation_policy == MpesaConfiguration.ValidationPolicy.REJECT_UNKNOWN
        and not _identifies_someone(payload)
    ):
        answer = _reject("C2B00012", "Rejected: invalid account number")
    else:
        answer = CallbackAnswer(200, dict(ACCEPTED))
    accepted = answer.body["ResultCode"] == "0"
    _store(
        config,
        inbound,
        outcome=(
            CallbackRequest.Outcome.ACCEPTED
            if accepted
            else (CallbackRequest.Outcome.MALFORMED if payload is None else CallbackRequest.Outcome.REJECTED)
        ),
        result_code=answer.body["ResultCode"],
        error=error or ("" if accepted else answer.body["ResultDesc"]),
    )
    return answer


def _identifies_someone(payload: C2BPayload) -> bool:
    facts = payment_facts(payload)
    directory = DatabaseDirectory()
    return any(identify(facts, directory) is not None for identify in IDENTIFIERS)


def _confirm(config: MpesaConfiguration, inbound: InboundRequest) -> CallbackAnswer:
    payload, error = _parse(inbound)
    if payload is not None and payload.amount <= 0:
        payload, error = None, "TransAmount must be more than zero"
    if payload is None:
        _store(config, inbound, outcome=CallbackRequest.Outcome.MALFORMED, result_code="400", error=error)
        logger.warning("mpesa confirmation malformed: %s", error)
        _alert_malformed(error)
        return CallbackAnswer(400, {"ResultCode": "C2B00016", "ResultDesc": f"Rejected: {error}"})

    from payments.tasks import ring_doorbell

    callback = _callback_values(config, inbound, outcome=CallbackRequest.Outcome.ACCEPTED, result_code="0")
    try:
        created = _insert_confirmation(callback, transaction_values(payload, config))
    except DataError as exc:
        _store(
            config,
            inbound,
            outcome=CallbackRequest.Outcome.MALFORMED,
            result_code="400",
            error=f"does not fit the transaction record: {exc}",
        )
        return CallbackAnswer(400, {"ResultCode": "C2B00016", "ResultDesc": "Rejected: malformed payload"})
    if not created:
        # The same TransID again (Safaricom re-delivered): acknowledge, create nothing.
        logger.info("mpesa confirmation %s is a duplicate", payload.trans_id)
        return CallbackAnswer(200, dict(CONFIRMED))
    if payload.business_short_code != config.business_short_code:
        logger.warning(
            "mpesa confirmation %s for short code %s on the %s configuration",
            payload.trans_id,
            payload.business_short_code,
            config.business_short_code,
        )
    # robust: the payment is stored; a broker hiccup must not turn its acknowledgement into a 500
    # (the sweeper rings again for it).
    transaction.on_commit(ring_doorbell, robust=True)
    logger.info("mpesa confirmation %s stored", payload.trans_id)
    return CallbackAnswer(200, dict(CONFIRMED))


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


def _insert_confirmation(callback: dict, payment: dict) -> bool:
    """Store the raw request and the payment together (their values as ``_callback_values`` and
    ``transaction_values`` give them). Returns False, with the request stored as a duplicate, when a
    payment with the same ``TransID`` exists. Raises ``DataError`` (nothing stored) when a value
    does not fit its column."""
    if connection.vendor == "postgresql":
        return _insert_confirmation_in_one_statement(callback, payment)
    with transaction.atomic():
        request = CallbackRequest(**callback)
        request.save(force_insert=True)
        try:
            with transaction.atomic():
                MpesaTransaction(**payment, callback=request).save(force_insert=True)
        except IntegrityError:
            request.outcome = CallbackRequest.Outcome.DUPLICATE
            request.save(update_fields=["outcome"])
            return False
    return True


def _insert_confirmation_in_one_statement(callback: dict, payment: dict) -> bool:
    # The hot path of every payment. Through the ORM it took a transaction, two INSERTs and a
    # savepoint around the second (to catch a duplicate TransID); one statement with two
    # data-modifying CTEs and ON CONFLICT does the same in a single round trip and commit. It is
    # prepared once per connection, and its parameters are built without model instances: both
    # cost more than the INSERTs (bench/payments.py). Columns come from the models, so they cannot
    # drift.
    callback_columns, callback_params = insert_params(CallbackRequest, callback)
    payment_columns, payment_params = insert_params(MpesaTransaction, payment, exclude=("callback",))
    with connection.cursor() as cursor:
        execute_prepared(
            cursor,
            "haven_confirmation_insert",
            _confirmation_sql(callback_columns, payment_columns),
            [*callback_params, *payment_params],
        )
        callback_pk, payment_pk = cursor.fetchone()
    if payment_pk is None:
        CallbackRequest.objects.filter(pk=callback_pk).update(outcome=CallbackRequest.Outcome.DUPLICATE)
        return False
    return True


@functools.cache
def _confirmation_sql(callback_columns: tuple[str, ...], payment_columns: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    callback_table = quote(CallbackRequest._meta.db_table)
    payment_table = quote(MpesaTransaction._meta.db_table)
    callback_link = quote(column_of(concrete_field(MpesaTransaction, "callback")))
    trans_id = quote(column_of(concrete_field(MpesaTransaction, "trans_id")))
    # Identifiers come from model metadata, quoted; every value is a query parameter.
    return (
        f"WITH callback AS ("  # noqa: S608
        f"INSERT INTO {callback_table} ({', '.join(map(quote, callback_columns))}) "
        f"VALUES ({', '.join(['%s'] * len(callback_columns))}) RETURNING id"
        f"), payment AS ("
        f"INSERT INTO {payment_table} ({', '.join(map(quote, payment_columns))}, {callback_link}) "
        f"VALUES ({', '.join(['%s'] * len(payment_columns))}, (SELECT id FROM callback)) "
        f"ON CONFLICT ({trans_id}) DO NOTHING RETURNING id"
        f") SELECT callback.id, payment.id FROM callback LEFT JOIN payment ON TRUE"
    )


def _alert_malformed(error: str) -> None:
    outbox_queue_for_staff(
        users=staff_to_alert(),
        body=f"An M-Pesa confirmation could not be read and needs a look: {error[:200]}",
        dedupe_key=f"malformed:{timezone.now().strftime('%Y%m%d%H')}",
        context={"kind": "malformed"},
    )
