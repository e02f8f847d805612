"""Daraja C2B callbacks: store the request as it came, answer Safaricom, hand the payment to a worker.

The hot path of a confirmation is one INSERT of the payment, the raw request on the same row, and a
task enqueued after it; matching and posting happen in ``payments.tasks``. The transaction row is
the durable record: if the enqueue is lost, the sweeper finds the row still ``received``. Every
other request (validations, malformed or refused confirmations, duplicates) is stored raw as a
``CallbackRequest``.
"""

import functools
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DataError, transaction
from django.utils import timezone

from core.services.outbox import outbox_queue_for_staff, staff_to_alert
from payments.answers import CallbackAnswer
from payments.matching import IDENTIFIERS
from payments.models import CallbackRequest, MpesaConfiguration, callback_token_digest
from payments.parsing import C2BPayload, MalformedCallback, parse_c2b_body
from payments.selectors import DatabaseDirectory
from payments.services.doorbell import ring_doorbell
from payments.services.processing import payment_facts
from payments.services.status import status_result_receive, status_timeout_receive
from payments.services.storing import payment_insert, transaction_values

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
ACCEPTED = {"ResultCode": "0", "ResultDesc": "Accepted"}
CONFIRMED = {"ResultCode": 0, "ResultDesc": "Success"}
_HIDDEN_HEADERS = {"cookie", "authorization", "proxy-authorization"}


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


def _raw_request(inbound: InboundRequest) -> dict:
    """The request as it arrived, as stored on a ``CallbackRequest`` or a payment (attribute names):
    its source address, its headers (credentials left out) and its body."""
    return {
        "source_ip": inbound.source_ip,
        "headers": {k: v for k, v in inbound.headers.items() if k.lower() not in _HIDDEN_HEADERS},
        # Bytes that are not UTF-8, and NUL (which no database text holds), as backslash escapes.
        "body": inbound.body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00"),
    }


def _store(config: MpesaConfiguration, inbound: InboundRequest, **fields) -> CallbackRequest:
    callback = CallbackRequest(kind=inbound.kind, config=config, **_raw_request(inbound), **fields)
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
    if inbound.kind in (CallbackRequest.Kind.STATUS_RESULT, CallbackRequest.Kind.STATUS_TIMEOUT):
        return _status_answer(config, inbound)
    if inbound.kind == CallbackRequest.Kind.VALIDATION:
        return _validate(config, inbound)
    return _confirm(config, inbound)


def _status_answer(config: MpesaConfiguration, inbound: InboundRequest) -> CallbackAnswer:
    """A Transaction Status result or timeout: protected like the callbacks (the same token, size
    limit and source check above), stored raw, handled by ``payments.services.status``."""
    receive = (
        status_result_receive
        if inbound.kind == CallbackRequest.Kind.STATUS_RESULT
        else status_timeout_receive
    )
    status, body = receive(config, inbound.body, functools.partial(_store, config, inbound))
    return CallbackAnswer(status, body)


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
    elif payload.amount <= 0 or payload.amount > settings.MPESA_MAX_AMOUNT:
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

    raw = _raw_request(inbound)
    payment = transaction_values(payload, config)
    payment.update(source_ip=raw["source_ip"], raw_headers=raw["headers"], raw_body=raw["body"])
    try:
        created = payment_insert(payment)
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
        # The same TransID again (Safaricom re-delivered): acknowledge, keep the request, create nothing.
        _store(config, inbound, outcome=CallbackRequest.Outcome.DUPLICATE, result_code="0")
        logger.info("mpesa confirmation %s is a duplicate", payload.trans_id)
        return CallbackAnswer(200, dict(CONFIRMED))
    # A payment for another short code or over MPESA_MAX_AMOUNT is stored all the same (the money
    # has moved) and held for staff by processing (payments.services.processing.hold_reason), off
    # this hot path.
    # robust: the payment is stored; a broker hiccup must not turn its acknowledgement into a 500
    # (the sweeper rings again for it).
    transaction.on_commit(ring_doorbell, robust=True)
    logger.info("mpesa confirmation %s stored", payload.trans_id)
    return CallbackAnswer(200, dict(CONFIRMED))


def _alert_malformed(error: str) -> None:
    outbox_queue_for_staff(
        users=staff_to_alert(),
        body=f"An M-Pesa confirmation could not be read and needs a look: {error[:200]}",
        dedupe_key=f"malformed:{timezone.now().strftime('%Y%m%d%H')}",
        context={"kind": "malformed"},
    )
