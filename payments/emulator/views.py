"""The Daraja emulator: OAuth, C2B register URL (v1 and v2) and C2B simulate, answering like Daraja.

Simulate does what M-Pesa does after a customer pays: it POSTs the payment to the validation URL
registered for the short code and, unless validation rejects it, to the confirmation URL. Unlike Daraja
it does this before answering, and answers with the outcome (and the new ``TransID``), so a caller can
follow the payment. It calls back into the same server, so that server must handle concurrent requests
(``runserver`` and the test live server do; a single sync gunicorn worker would wait for itself).
"""

import base64
import binascii
import functools
import hashlib
import json
import logging
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from core.dates import NAIROBI
from core.exceptions import InvalidAmount
from core.money import to_money
from core.phones import mask_phone, msisdn_hash, try_normalize_phone
from payments.clients.daraja import (
    API_VERSIONS,
    COMMAND_IDS,
    INVALID_TOKEN,
    MSISDN_FORMATS,
    RESPONSE_TYPES,
    callback_url_problem,
)
from payments.codes import is_short_code
from payments.emulator.ledger import ledger_record
from payments.models import MpesaConfiguration

logger = logging.getLogger(__name__)

TOKEN_LIFETIME = 3599
# M-Pesa gives the validation URL about 8 seconds before it applies the registered ResponseType.
VALIDATION_TIMEOUT = 8.0
CONFIRMATION_TIMEOUT = 8.0
DEFAULT_NAMES = {"FirstName": "JOHN", "MiddleName": "", "LastName": "DOE"}
_PREFIX = "daraja-emulator"
_TRANS_ID_ALPHABET = string.ascii_uppercase + string.digits
_TOKEN_ALPHABET = string.ascii_letters + string.digits


def _emulator_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Mounted only when enabled; checked again so a stray include cannot expose it in production.
        if not getattr(settings, "MPESA_EMULATOR_ENABLED", settings.DEBUG):
            raise Http404("the Daraja emulator is disabled")
        return view(request, *args, **kwargs)

    # Daraja's callers send no CSRF token.
    return csrf_exempt(wrapper)


def _request_id() -> str:
    return f"{1000 + secrets.randbelow(9000)}-{10_000_000 + secrets.randbelow(90_000_000)}-1"


def _error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse(
        {"requestId": _request_id(), "errorCode": code, "errorMessage": message, **extra}, status=status
    )


def _bad_request(message: str) -> JsonResponse:
    return _error(400, "400.002.02", f"Bad Request - {message}")


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _valid_short_code(raw: object) -> str | None:
    text = str(raw if raw is not None else "").strip()
    return text if is_short_code(text) else None


# --- Tokens ---------------------------------------------------------------------------------------


def _consumer_id(consumer_key: str) -> str:
    return hashlib.sha256(consumer_key.encode()).hexdigest()[:32]


def _issue_token(consumer_key: str) -> str:
    token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(28))
    consumer = _consumer_id(consumer_key)
    # Only the newest token of an app is valid, as at Daraja.
    cache.set_many(
        {f"{_PREFIX}:token:{token}": consumer, f"{_PREFIX}:current:{consumer}": token}, timeout=TOKEN_LIFETIME
    )
    return token


def _token_is_valid(token: str) -> bool:
    consumer = cache.get(f"{_PREFIX}:token:{token}")
    return consumer is not None and cache.get(f"{_PREFIX}:current:{consumer}") == token


def _bearer_refusal(request: HttpRequest) -> JsonResponse | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(404, "404.001.04", "Invalid Authentication Header")
    if not _token_is_valid(token.strip()):
        return _error(404, INVALID_TOKEN, "Invalid Access Token")
    return None


def _basic_credentials(request: HttpRequest) -> tuple[str, str]:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    key, _, secret = decoded.partition(":")
    return key, secret


@_emulator_view
def oauth_generate(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _error(405, "405.001.01", "Method Not Allowed")
    if request.GET.get("grant_type") != "client_credentials":
        return _error(400, "400.008.02", "Invalid grant type passed")
    consumer_key, consumer_secret = _basic_credentials(request)
    if not consumer_key or not consumer_secret:
        return _error(400, "400.008.01", "Invalid Authentication passed")
    token = _issue_token(consumer_key)
    logger.info("daraja emulator: issued an access token (previous one of this app invalidated)")
    return JsonResponse({"access_token": token, "expires_in": str(TOKEN_LIFETIME)})


# --- Register URL ---------------------------------------------------------------------------------


def _authenticated_body(request: HttpRequest) -> dict[str, Any] | HttpResponse:
    """What every authenticated Daraja call checks first, answered as Daraja does: POST, the bearer
    token and a JSON body. Returns the body or the error response."""
    if request.method != "POST":
        return _error(405, "405.001.01", "Method Not Allowed")
    if refusal := _bearer_refusal(request):
        return refusal
    body = _json_body(request)
    if body is None:
        return _bad_request("Invalid JSON")
    return body


def _checked_call(request: HttpRequest, version: str) -> tuple[dict[str, Any], str] | HttpResponse:
    """A Daraja C2B call's checks: the API version, then ``_authenticated_body``'s, then the body's
    ShortCode. Returns ``(body, short_code)`` or the error response."""
    if version not in API_VERSIONS:
        return _error(404, "404.002.01", "Resource not found")
    body = _authenticated_body(request)
    if isinstance(body, HttpResponse):
        return body
    short_code = _valid_short_code(body.get("ShortCode"))
    if short_code is None:
        return _bad_request("Invalid ShortCode")
    return body, short_code


def _registration_key(short_code: str) -> str:
    return f"{_PREFIX}:urls:{short_code}"


@_emulator_view
def register_url(request: HttpRequest, version: str) -> HttpResponse:
    checked = _checked_call(request, version)
    if isinstance(checked, HttpResponse):
        return checked
    body, short_code = checked
    response_type = body.get("ResponseType")
    if response_type not in RESPONSE_TYPES:
        return _bad_request("Invalid ResponseType")
    urls = {}
    for name in ("ConfirmationURL", "ValidationURL"):
        url = body.get(name)
        if not isinstance(url, str) or callback_url_problem(url, production=False):
            return _bad_request(f"Invalid {name}")
        urls[name] = url
    cache.set(
        _registration_key(short_code),
        {
            "response_type": response_type,
            "confirmation_url": urls["ConfirmationURL"],
            "validation_url": urls["ValidationURL"],
            "version": version,
        },
        timeout=None,
    )
    logger.info("daraja emulator: URLs registered for %s (%s, %s)", short_code, version, response_type)
    return JsonResponse(
        {"OriginatorCoversationID": _request_id(), "ResponseCode": "0", "ResponseDescription": "Success"}
    )


# --- Simulate -------------------------------------------------------------------------------------


def _new_trans_id() -> str:
    return "SK" + "".join(secrets.choice(_TRANS_ID_ALPHABET) for _ in range(8))


def _written_msisdn(e164: str, msisdn_format: str) -> str:
    digits = e164.removeprefix("+")
    if msisdn_format == "hashed":
        return msisdn_hash(e164)
    if msisdn_format == "masked":
        return f"{digits[:4]} ***** {digits[-3:]}"
    return digits


def _amount(raw: object) -> Decimal | None:
    if isinstance(raw, float):
        raw = repr(raw)  # JSON numbers like 500.0; to_money refuses floats on principle
    try:
        amount = to_money(raw)
    except InvalidAmount:
        return None
    return amount if amount > 0 and amount == amount.to_integral_value() else None


def _ask_validation(url: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``("accepted" | "rejected" | "unreachable", answer)`` from the validation URL."""
    try:
        response = httpx.post(url, json=payload, timeout=VALIDATION_TIMEOUT)
    except httpx.HTTPError as exc:
        logger.info("daraja emulator: validation URL unreachable (%s)", type(exc).__name__)
        return "unreachable", {}
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not response.is_success or not isinstance(answer, dict) or "ResultCode" not in answer:
        logger.info("daraja emulator: validation URL gave no usable answer (HTTP %s)", response.status_code)
        return "unreachable", {}
    return ("accepted" if str(answer["ResultCode"]).strip() == "0" else "rejected"), answer


def _credit_balance(short_code: str, amount: Decimal) -> str:
    key = f"{_PREFIX}:balance:{short_code}"
    cache.add(key, 0, timeout=None)
    cents = cache.incr(key, int(amount * 100))
    return f"{Decimal(cents) / 100:.2f}"


def _is_local_paybill(short_code: str) -> bool:
    # Simulate makes money appear: only ever for a paybill that is the emulator's own, never for
    # one configured against Daraja's sandbox or production, whatever URLs were registered for it.
    return MpesaConfiguration.objects.filter(
        business_short_code=short_code, is_active=True, environment=MpesaConfiguration.Environment.LOCAL
    ).exists()


@dataclass(frozen=True, slots=True)
class _Payment:
    """What a simulate call asks for, checked as Daraja checks it."""

    short_code: str
    command_id: str
    amount: Decimal
    e164: str
    bill_reference: str
    msisdn_format: str
    names: dict[str, str]
    # Emulator only: False is a payment whose callbacks M-Pesa lost (the ledger keeps it).
    deliver: bool


def _payment_asked(body: dict[str, Any], short_code: str) -> _Payment | JsonResponse:
    command_id = body.get("CommandID")
    if command_id not in COMMAND_IDS:
        return _bad_request("Invalid CommandID")
    amount = _amount(body.get("Amount"))
    if amount is None:
        return _bad_request("Invalid Amount")
    e164 = try_normalize_phone(str(body.get("Msisdn") or ""))
    if e164 is None:
        return _bad_request("Invalid Msisdn")
    bill_reference = str(body.get("BillRefNumber") or "")
    if len(bill_reference) > 20:
        return _bad_request("Invalid BillRefNumber")
    msisdn_format = body.get("MsisdnFormat") or "hashed"
    if msisdn_format not in MSISDN_FORMATS:
        return _bad_request("Invalid MsisdnFormat")
    if not _is_local_paybill(short_code):
        return _bad_request(
            f"ShortCode {short_code} is not an active configuration of the local environment: the emulator "
            "pays only those"
        )
    return _Payment(
        short_code=short_code,
        command_id=str(command_id),
        amount=amount,
        e164=e164,
        bill_reference=bill_reference,
        msisdn_format=str(msisdn_format),
        names={name: str(body.get(name, default)) for name, default in DEFAULT_NAMES.items()},
        deliver=body.get("DeliverCallbacks") is not False,
    )


def _c2b_payload(payment: _Payment, trans_id: str) -> dict[str, Any]:
    """The callback body M-Pesa sends for ``payment`` (its balance is filled in once it is accepted)."""
    return {
        "TransactionType": "Pay Bill" if payment.command_id == "CustomerPayBillOnline" else "Buy Goods",
        "TransID": trans_id,
        "TransTime": timezone.now().astimezone(NAIROBI).strftime("%Y%m%d%H%M%S"),
        "TransAmount": f"{payment.amount:.2f}",
        "BusinessShortCode": payment.short_code,
        "BillRefNumber": payment.bill_reference,
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": _written_msisdn(payment.e164, payment.msisdn_format),
        **payment.names,
    }


def _cancelled(
    outcome: str, answer: dict[str, Any], response_type: str, trans_id: str
) -> JsonResponse | None:
    """M-Pesa's answer when validation stops the payment: refused by the validation URL, or no answer
    while the registered ResponseType is Cancelled. ``None`` when the payment goes ahead."""
    if outcome == "rejected":
        code = str(answer["ResultCode"]).strip()
        return _error(
            400,
            code,
            f"The validation URL rejected the payment: {code} {answer.get('ResultDesc', '')}".strip(),
            TransID=trans_id,
        )
    if outcome == "unreachable" and response_type == "Cancelled":
        return _error(
            400,
            "C2B00016",
            "The validation URL gave no answer and the registered ResponseType is Cancelled, "
            "so M-Pesa cancelled the payment",
            TransID=trans_id,
        )
    return None


def _confirm(url: str, payload: dict[str, Any]) -> None:
    trans_id = payload["TransID"]
    try:
        response = httpx.post(url, json=payload, timeout=CONFIRMATION_TIMEOUT)
        logger.info("daraja emulator: confirmation of %s answered HTTP %s", trans_id, response.status_code)
    except httpx.HTTPError as exc:
        # As with M-Pesa, the money has moved even when the confirmation is lost.
        logger.warning("daraja emulator: confirmation of %s not delivered (%s)", trans_id, type(exc).__name__)


@_emulator_view
def simulate(request: HttpRequest, version: str) -> HttpResponse:
    checked = _checked_call(request, version)
    if isinstance(checked, HttpResponse):
        return checked
    body, short_code = checked
    payment = _payment_asked(body, short_code)
    if isinstance(payment, JsonResponse):
        return payment
    registration = cache.get(_registration_key(short_code))
    if registration is None:
        return _bad_request(f"No URLs registered for ShortCode {short_code} (run setup_mpesa --register)")

    trans_id = _new_trans_id()
    payload = _c2b_payload(payment, trans_id)
    logger.info(
        "daraja emulator: %s pays %s KES %s (TransID %s)",
        mask_phone(payment.e164),
        short_code,
        payment.amount,
        trans_id,
    )
    outcome, answer = (
        _ask_validation(registration["validation_url"], payload) if payment.deliver else ("accepted", {})
    )
    cancelled = _cancelled(outcome, answer, registration["response_type"], trans_id)
    if cancelled is not None:
        return cancelled
    if outcome == "accepted" and answer.get("ThirdPartyTransID"):
        payload["ThirdPartyTransID"] = str(answer["ThirdPartyTransID"])
    payload["OrgAccountBalance"] = _credit_balance(short_code, payment.amount)
    ledger_record(payload, msisdn=payment.e164, callbacks_delivered=payment.deliver)
    if payment.deliver:
        _confirm(registration["confirmation_url"], payload)
    return JsonResponse(
        {
            "OriginatorCoversationID": _request_id(),
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully.",
            "TransID": trans_id,
        }
    )
