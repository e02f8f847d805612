"""Africa's Talking SMS, and the GSM-7 arithmetic that decides what a message costs.

``AfricasTalkingSms`` sends one message through the official SDK (``africastalking`` >= 2.0.3).
It reads its settings at every send, never at import, so a rotated key takes effect without a
restart: ``AFRICASTALKING_USERNAME``, ``AFRICASTALKING_API_KEY``, ``AFRICASTALKING_SENDER_ID``
(empty: Africa's Talking's default sender), ``AFRICASTALKING_BASE_URL`` (empty: the SDK's host,
the sandbox one when the username is ``sandbox``) and ``SMS_HTTP_TIMEOUT`` (seconds, default 10).
"""

import logging
import re

import requests
from africastalking.Service import DEFAULT_TIMEOUT_S
from africastalking.SMS import SMSService
from django.conf import settings

from core.exceptions import ExternalServiceError
from core.logfilters import mask_phone_numbers
from core.phones import mask_phone, try_normalize_phone

logger = logging.getLogger(__name__)

# GSM 03.38: the default alphabet (one septet each) and its extension table (escape + septet: two).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
_GSM7 = GSM7_BASIC | GSM7_EXTENSION
GSM7_SINGLE, GSM7_CONCATENATED = 160, 153
UCS2_SINGLE, UCS2_CONCATENATED = 70, 67

DEFAULT_TIMEOUT_SECONDS = 10.0

# Per-recipient ``statusCode`` in the answer to a send.
ACCEPTED_STATUS_CODES = frozenset({100, 101, 102})  # Processed, Sent, Queued
# Rejections that can clear within the outbox's backoff (five attempts over about eight minutes).
TRANSIENT_STATUS_CODES = {
    405: "InsufficientBalance",  # someone tops the account up; the next attempt goes through
    500: "InternalServerError",
    501: "GatewayError",  # the telco's gateway did not answer Africa's Talking
}
# Rejections that the same message to the same number meets again.
PERMANENT_STATUS_CODES = {
    # Held by Africa's Talking's risk checks until support releases the account; a resend could
    # deliver the receipt twice if the held message is released later.
    401: "RiskHold",
    402: "InvalidSenderId",
    403: "InvalidPhoneNumber",
    404: "UnsupportedNumberType",
    406: "UserInBlacklist",  # the subscriber opted out of messages from this sender
    407: "CouldNotRoute",
    409: "DoNotDisturbRejection",
    502: "RejectedByGateway",  # the telco refused this message, not the connection
}
# HTTP answers to the request as a whole that are worth repeating; every other 4xx is not.
RETRYABLE_HTTP_STATUSES = frozenset({408, 425, 429})

_E164 = re.compile(r"^\+\d{8,15}$")


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 alphabet (its extension table included),
    so the message travels at 160 characters a segment instead of the 70 of UCS-2."""
    return _GSM7.issuperset(text)


def sms_segments(text: str) -> int:
    """How many SMS segments ``text`` is billed as (an empty text still costs one).

    GSM-7: 160 septets fit one segment, 153 each once concatenated; an extension character
    (``^{}\\[~]|€``) takes two. Anything else goes as UCS-2: 70 UTF-16 units, 67 concatenated (an
    emoji takes two). A two-unit character is never split between segments, as handsets require.
    """
    if is_gsm7(text):
        units = [2 if char in GSM7_EXTENSION else 1 for char in text]
        single, concatenated = GSM7_SINGLE, GSM7_CONCATENATED
    else:
        units = [2 if ord(char) > 0xFFFF else 1 for char in text]
        single, concatenated = UCS2_SINGLE, UCS2_CONCATENATED
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > concatenated:
            segments, used = segments + 1, 0
        used += size
    return segments


class _HttpAnswerError(Exception):
    """Africa's Talking answered with a non-2xx status, or with a 2xx body that is not JSON."""

    def __init__(self, status_code: int, text: str) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.text = text


class _SmsService(SMSService):
    """The SDK's SMS service with a transport that keeps the HTTP status of a failed call.

    The SDK's ``Service._make_request`` raises ``AfricasTalkingException(response.text)`` for every
    non-2xx answer, dropping the status that tells a bad API key (401: permanent) from an outage
    (5xx: retry), and hands back text unless Content-Type is exactly ``application/json``.
    The form fields, headers (``apiKey``, ``Accept``), URL and timeout stay the SDK's own.
    Synchronous only: this client never passes the SDK a ``callback``.
    """

    def _make_request(self, url, method, headers, data, params, callback=None, timeout=DEFAULT_TIMEOUT_S):
        response = requests.request(method, url, headers=headers, data=data, params=params, timeout=timeout)
        if not 200 <= response.status_code < 300:
            raise _HttpAnswerError(response.status_code, response.text)
        try:
            return response.json()
        except ValueError:
            raise _HttpAnswerError(response.status_code, response.text) from None


class AfricasTalkingSms:
    """Sends one SMS through Africa's Talking and returns its message id.

    ``send`` raises ``ExternalServiceError`` with ``permanent=True`` when sending the same message
    again cannot help (missing or refused credentials, a number Africa's Talking will not route, a
    subscriber who opted out, a sender ID it does not know) and ``permanent=False`` for what can
    clear (timeouts, connection errors, HTTP 5xx, insufficient balance, gateway errors).
    """

    def send(self, *, recipient: str, body: str) -> str:
        service = self._service()
        number = _e164(recipient)
        masked = mask_phone(number)
        sender_id = getattr(settings, "AFRICASTALKING_SENDER_ID", "") or None
        timeout = float(getattr(settings, "SMS_HTTP_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))
        try:
            answer = service.send(body, [number], sender_id=sender_id, timeout=timeout)
        except requests.Timeout as exc:
            raise ExternalServiceError(f"Africa's Talking did not answer within {timeout:g} s") from exc
        except requests.RequestException as exc:
            raise ExternalServiceError(f"could not reach Africa's Talking ({type(exc).__name__})") from exc
        except _HttpAnswerError as exc:
            raise _http_error(exc) from None
        except ValueError:
            # The SDK's own phone check; its message would carry the whole number.
            raise ExternalServiceError(
                f"Africa's Talking does not accept the number {masked}", permanent=True
            ) from None
        return _message_id(answer, masked)

    @staticmethod
    def _service() -> SMSService:
        username = getattr(settings, "AFRICASTALKING_USERNAME", "")
        api_key = getattr(settings, "AFRICASTALKING_API_KEY", "")
        if not (username and api_key):
            raise ExternalServiceError(
                "Africa's Talking credentials are missing: set AFRICASTALKING_USERNAME and "
                "AFRICASTALKING_API_KEY",
                permanent=True,
            )
        service = _SmsService(username, api_key)
        base_url = getattr(settings, "AFRICASTALKING_BASE_URL", "")
        if base_url:
            # The SDK has no base-URL setting: SMSService._init_service sets ``_baseUrl`` to the API
            # host plus "/version1", and every SMS URL is built from it.
            service._baseUrl = base_url.rstrip("/") + "/version1"
        return service


def _e164(recipient: str) -> str:
    number = try_normalize_phone(recipient) or recipient.strip()
    if not _E164.match(number):
        raise ExternalServiceError(f"{mask_phone(recipient)} is not an E.164 phone number", permanent=True)
    return number


def _http_error(exc: _HttpAnswerError) -> ExternalServiceError:
    status = exc.status_code
    if status == 401:
        return ExternalServiceError(
            "Africa's Talking refused the credentials (HTTP 401): check AFRICASTALKING_USERNAME and "
            "AFRICASTALKING_API_KEY",
            permanent=True,
        )
    # Error texts can echo the request, numbers included.
    text = mask_phone_numbers(exc.text.strip())[:200]
    if 200 <= status < 300:
        return ExternalServiceError(f"Africa's Talking answered HTTP {status} with no JSON: {text}")
    permanent = 400 <= status < 500 and status not in RETRYABLE_HTTP_STATUSES
    return ExternalServiceError(f"Africa's Talking answered HTTP {status}: {text}", permanent=permanent)


def _message_id(answer: object, masked: str) -> str:
    data = answer.get("SMSMessageData") if isinstance(answer, dict) else None
    if not isinstance(data, dict):
        raise ExternalServiceError("Africa's Talking answered without SMSMessageData")
    recipients = data.get("Recipients") or []
    if not recipients:
        # The request as a whole was refused, e.g. {"Message": "InvalidSenderId", "Recipients": []}.
        reason = str(data.get("Message") or "no reason given")
        raise ExternalServiceError(f"Africa's Talking sent to no one: {reason}", permanent=True)
    result = recipients[0]
    try:
        status_code = int(result.get("statusCode"))
    except (TypeError, ValueError):
        status_code = 0
    if status_code in ACCEPTED_STATUS_CODES:
        message_id = str(result.get("messageId") or "")
        logger.info(
            "SMS to %s accepted by Africa's Talking: %s %s, id %s, cost %s",
            masked,
            status_code,
            result.get("status"),
            message_id,
            result.get("cost"),
        )
        return message_id
    if status_code in TRANSIENT_STATUS_CODES:
        permanent = False
    elif status_code in PERMANENT_STATUS_CODES:
        permanent = True
    else:
        # A code this client does not know: a server-side one may clear, a request-side one will not.
        permanent = status_code < 500
    status = (
        result.get("status")
        or TRANSIENT_STATUS_CODES.get(status_code)
        or PERMANENT_STATUS_CODES.get(status_code)
    )
    raise ExternalServiceError(
        f"Africa's Talking refused the SMS to {masked}: {status_code} {status or 'unknown'}",
        permanent=permanent,
        provider_status=status_code,
    )


_GSM7_LOOKALIKES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\t": " ",
    }
)


def gsm7_normalize(text: str) -> str:
    """``text`` in the GSM-7 alphabet: typographic quotes, dashes and odd spaces become their plain
    forms, any other character outside the alphabet a ``?`` (a name with an emoji must not turn a
    reply into UCS-2, or push a USSD screen past what the handset shows)."""
    plain = text.translate(_GSM7_LOOKALIKES)
    return "".join(char if is_gsm7(char) else "?" for char in plain)
