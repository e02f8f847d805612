"""The emulator's recovery APIs, answered from its ledger (``EmulatedPayment``) as Daraja answers them:
Pull Transactions (register, and a paginated query; ``1001`` when there is nothing) and Transaction
Status (acknowledged at once; the result is POSTed to the ResultURL a moment later, as Daraja does).
"""

import datetime
import json
import logging
import secrets
import threading
from typing import Any

import httpx
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from core.dates import NAIROBI
from payments.clients.daraja import PULL_NO_TRANSACTIONS, PULL_OK, callback_url_problem
from payments.codes import is_trans_id
from payments.emulator.models import EmulatedPayment
from payments.emulator.views import (
    _authenticated_body,
    _bad_request,
    _checked_call,
    _emulator_view,
    _request_id,
    _valid_short_code,
)

logger = logging.getLogger(__name__)

# Rows per Pull Transactions page (Daraja pages its answer; tests lower it to see several pages).
PULL_PAGE_SIZE = 100
# Daraja answers a Transaction Status query at once and POSTs the result a little later.
STATUS_RESULT_DELAY = 0.3
STATUS_RESULT_TIMEOUT = 8.0
ORGANIZATION_NAME = "HAVEN GRAZURI"
# Daraja's answer when the receipt number is not one of the organisation's transactions.
STATUS_NOT_FOUND = ("2001", "The transaction receipt number does not exist.")


# --- Pull Transactions ------------------------------------------------------------------------------


def _pull_time(raw: object) -> datetime.datetime | None:
    try:
        return datetime.datetime.strptime(str(raw), "%Y-%m-%d %H:%M:%S").replace(tzinfo=NAIROBI)
    except ValueError:
        return None


def _pull_row(payment: EmulatedPayment) -> dict[str, Any]:
    return {
        "transactionId": payment.trans_id,
        "trxDate": payment.trans_time.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "msisdn": int(payment.msisdn),
        "sender": "UPS",
        "transactiontype": "c2b-pay-bill-debit",
        "billreference": payment.payload.get("BillRefNumber", ""),
        "amount": f"{payment.amount:.1f}",
        "organizationname": ORGANIZATION_NAME,
    }


@_emulator_view
def pull_register(request: HttpRequest) -> HttpResponse:
    checked = _checked_call(request, "v1")
    if isinstance(checked, HttpResponse):
        return checked
    body, short_code = checked
    url = body.get("CallBackURL")
    if not isinstance(url, str) or callback_url_problem(url, production=False):
        return _bad_request("Invalid CallBackURL")
    return JsonResponse(
        {
            "ResponseRefID": _request_id(),
            "ResponseStatus": PULL_OK,
            "ShortCode": short_code,
            "ResponseDescription": "Shortcode registered successfully",
        }
    )


@_emulator_view
def pull_query(request: HttpRequest) -> HttpResponse:
    checked = _checked_call(request, "v1")
    if isinstance(checked, HttpResponse):
        return checked
    body, short_code = checked
    start, end = _pull_time(body.get("StartDate")), _pull_time(body.get("EndDate"))
    if start is None or end is None:
        return _bad_request("Invalid StartDate or EndDate (YYYY-MM-DD HH:MM:SS)")
    try:
        offset = int(str(body.get("OffSetValue", "0")))
    except ValueError:
        offset = -1
    if offset < 0:
        return _bad_request("Invalid OffSetValue")
    page = list(
        EmulatedPayment.objects.filter(short_code=short_code, trans_time__gte=start, trans_time__lte=end)[
            offset : offset + PULL_PAGE_SIZE
        ]
    )
    if not page:
        return JsonResponse(
            {
                "ResponseRefID": _request_id(),
                "ResponseCode": PULL_NO_TRANSACTIONS,
                "ResponseMessage": "No transactions found",
                "Response": [],
            }
        )
    return JsonResponse(
        {
            "ResponseRefID": _request_id(),
            "ResponseCode": PULL_OK,
            "ResponseMessage": "Success",
            "Response": [[_pull_row(payment) for payment in page]],
        }
    )


# --- Transaction Status -----------------------------------------------------------------------------


def _status_parameters(payment: EmulatedPayment, originator_id: str, conversation_id: str) -> list[dict]:
    payload = payment.payload
    names = " ".join(
        part for part in (payload.get(k, "") for k in ("FirstName", "MiddleName", "LastName")) if part
    )
    when = int(payment.trans_time.astimezone(NAIROBI).strftime("%Y%m%d%H%M%S"))
    values: dict[str, Any] = {
        "DebitPartyName": f"{payment.msisdn} - {names}".strip(" -"),
        "CreditPartyName": f"{payment.short_code} - {ORGANIZATION_NAME}",
        "OriginatorConversationID": originator_id,
        "InitiatedTime": when,
        "DebitAccountType": "MMF Account For Customer",
        "DebitPartyCharges": "",
        "TransactionReason": "",
        "ReasonType": "Pay Bill Online",
        "TransactionStatus": "Completed",
        "FinalisedTime": when,
        "Amount": float(payment.amount),
        "ConversationID": conversation_id,
        "ReceiptNo": payment.trans_id,
    }
    return [{"Key": key, "Value": value} for key, value in values.items()]


def _status_result(body: dict[str, Any], originator_id: str, conversation_id: str) -> dict[str, Any]:
    trans_id = str(body.get("TransactionID", "")).strip().upper()
    short_code = str(body["PartyA"]).strip()
    payment = EmulatedPayment.objects.filter(trans_id=trans_id, short_code=short_code).first()
    result: dict[str, Any] = {
        "ResultType": 0,
        "OriginatorConversationID": originator_id,
        "ConversationID": conversation_id,
        "TransactionID": "SK" + secrets.token_hex(4).upper(),
        "ReferenceData": {"ReferenceItem": {"Key": "Occasion", "Value": str(body.get("Occasion", ""))}},
    }
    if payment is None:
        code, description = STATUS_NOT_FOUND
        result.update(ResultCode=code, ResultDesc=description)
    else:
        result.update(
            ResultCode=0,
            ResultDesc="The service request is processed successfully.",
            ResultParameters={"ResultParameter": _status_parameters(payment, originator_id, conversation_id)},
        )
    return {"Result": result}


# Results on their way, in this process (tests wait for them, or cancel them, before they end).
_deliveries: list[threading.Timer] = []


def results_delivered(timeout: float = 15.0) -> None:
    """Wait until every Transaction Status result this process has scheduled has been delivered."""
    while _deliveries:
        _deliveries.pop().join(timeout)


def results_cancel() -> None:
    """Drop the results not yet sent (and wait for any being sent)."""
    while _deliveries:
        delivery = _deliveries.pop()
        delivery.cancel()
        delivery.join()


def _deliver_result(url: str, result: dict[str, Any]) -> None:
    try:
        response = httpx.post(
            url,
            content=json.dumps(result),
            timeout=STATUS_RESULT_TIMEOUT,
            headers={"Content-Type": "application/json"},
        )
        logger.info("daraja emulator: status result answered HTTP %s", response.status_code)
    except httpx.HTTPError as exc:
        logger.warning("daraja emulator: status result not delivered (%s)", type(exc).__name__)


def _status_body(request: HttpRequest) -> dict[str, Any] | HttpResponse:
    """The query's body once it passes Daraja's checks, or Daraja's error answer."""
    body = _authenticated_body(request)
    if isinstance(body, HttpResponse):
        return body
    if body.get("CommandID") != "TransactionStatusQuery":
        return _bad_request("Invalid CommandID")
    if not body.get("Initiator") or not body.get("SecurityCredential"):
        return _bad_request("Invalid Initiator or SecurityCredential")
    if _valid_short_code(body.get("PartyA")) is None:
        return _bad_request("Invalid PartyA")
    if not is_trans_id(str(body.get("TransactionID") or "").strip()):
        return _bad_request("Invalid TransactionID")
    for name in ("ResultURL", "QueueTimeOutURL"):
        url = body.get(name)
        if not isinstance(url, str) or callback_url_problem(url, production=False):
            return _bad_request(f"Invalid {name}")
    return body


@_emulator_view
def transaction_status(request: HttpRequest) -> HttpResponse:
    body = _status_body(request)
    if isinstance(body, HttpResponse):
        return body
    originator_id = _request_id()
    conversation_id = f"AG_{timezone.now():%Y%m%d}_{secrets.token_hex(10)}"
    result = _status_result(body, originator_id, conversation_id)
    # After the answer, as Daraja does: the caller records its query before the result arrives.
    delivery = threading.Timer(STATUS_RESULT_DELAY, _deliver_result, args=(body["ResultURL"], result))
    delivery.daemon = True
    _deliveries.append(delivery)
    delivery.start()
    return JsonResponse(
        {
            "OriginatorConversationID": originator_id,
            "ConversationID": conversation_id,
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully.",
        }
    )
