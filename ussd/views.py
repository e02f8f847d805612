"""Africa's Talking's four callbacks. Each checks the shared secret, stores the request as it came
(but for the inputs a USSD request or an end-of-session notification carries from a PIN screen:
those are masked before the row is written), and hands the form to one service; none answers a
500 (the USSD one never anything but 200 for a real session: an internal error is an ``END``
apology, logged)."""

import hmac
import logging
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.http import client_ip, read_body_within
from core.services.deliveries import outbox_delivery_report
from ussd.models import InboundRequest
from ussd.services.events import session_end_pins_masked, session_end_record
from ussd.services.inbound import (
    MAX_BODY_BYTES,
    Hide,
    MalformedRequest,
    RawRequest,
    inbound_mark,
    inbound_rehide,
    inbound_store,
    parse_form,
)
from ussd.services.sessions import apology, ussd_answer, ussd_failure_record, ussd_request_pins_masked
from ussd.services.sms import sms_receive

logger = logging.getLogger(__name__)

Kind = InboundRequest.Kind
Outcome = InboundRequest.Outcome
Handler = Callable[[InboundRequest, dict[str, str]], HttpResponse]


def _text(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


def secret_matches(request: HttpRequest) -> bool:
    """Whether the request carries ``?secret=`` equal to ``AFRICASTALKING_CALLBACK_SECRET`` (compared in
    constant time); always true when no secret is configured (development only: production refuses
    to start without one)."""
    expected = settings.AFRICASTALKING_CALLBACK_SECRET
    if not expected:
        return True
    given = request.GET.get("secret", "")
    return hmac.compare_digest(given.encode(), expected.encode())


def _receive(
    request: HttpRequest,
    *,
    kind: str,
    required: tuple[str, ...],
    handle: Handler,
    hide: Hide | None = None,
) -> HttpResponse:
    if not secret_matches(request):
        logger.warning("Africa's Talking %s callback with a wrong secret from %s", kind, client_ip(request))
        return _text("forbidden", status=403)
    body, too_large = read_body_within(request, MAX_BODY_BYTES)
    raw = RawRequest(
        kind=kind, source_ip=client_ip(request), headers=dict(request.headers), body=body, too_large=too_large
    )
    stored = inbound_store(raw=raw, hide=hide)
    if too_large is not None:
        error = f"body of {too_large} bytes is over the {MAX_BODY_BYTES // 1024} KB limit"
        inbound_mark(request=stored, outcome=Outcome.MALFORMED, error=error)
        return _text(f"request refused: {error}", status=413)
    try:
        form = parse_form(body, required=required)
    except MalformedRequest as exc:
        inbound_mark(request=stored, outcome=Outcome.MALFORMED, error=str(exc))
        return _text(f"malformed request: {exc}", status=400)
    response = handle(stored, form)
    if hide is not None:  # answering may have told the session which inputs were PINs
        inbound_rehide(request=stored, raw=raw, hide=hide)
    return response


@csrf_exempt
@require_POST
@transaction.non_atomic_requests  # the raw request commits on its own, before any handling
def ussd_callback(request: HttpRequest) -> HttpResponse:
    try:
        return _receive(
            request,
            kind=Kind.USSD,
            required=("sessionId", "phoneNumber"),
            handle=_ussd,
            hide=ussd_request_pins_masked,
        )
    except Exception:
        logger.exception("USSD request could not be stored")
        return _text(apology())


def _ussd(stored: InboundRequest, form: dict[str, str]) -> HttpResponse:
    try:
        answer = ussd_answer(
            session_id=form["sessionId"].strip(),
            phone=form["phoneNumber"],
            service_code=form.get("serviceCode", ""),
            text=form.get("text", ""),
        )
    except Exception as exc:  # the handset must get an END, never a 500
        logger.exception("USSD request %s failed", stored.pk)
        ussd_failure_record(request=stored, error=f"{type(exc).__name__}: {exc}")
        return _text(apology())
    inbound_mark(request=stored, outcome=Outcome.HANDLED)
    return _text(answer)


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def ussd_events(request: HttpRequest) -> HttpResponse:
    return _receive(
        request,
        kind=Kind.USSD_EVENT,
        required=("sessionId",),
        handle=_ussd_event,
        hide=session_end_pins_masked,
    )


def _ussd_event(stored: InboundRequest, form: dict[str, str]) -> HttpResponse:
    recorded = session_end_record(form=form)
    inbound_mark(request=stored, outcome=Outcome.HANDLED if recorded else Outcome.DUPLICATE)
    return _text("ok")


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def sms_inbound(request: HttpRequest) -> HttpResponse:
    return _receive(request, kind=Kind.SMS, required=("id", "from"), handle=_sms)


def _sms(stored: InboundRequest, form: dict[str, str]) -> HttpResponse:
    try:
        incoming = sms_receive(request=stored, form=form)
    except Exception as exc:
        logger.exception("incoming SMS request %s failed", stored.pk)
        inbound_mark(request=stored, outcome=Outcome.ERROR, error=f"{type(exc).__name__}: {exc}")
        return _text("error, deliver again later", status=503)
    inbound_mark(request=stored, outcome=Outcome.HANDLED if incoming else Outcome.DUPLICATE)
    return _text("ok")


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def sms_delivery(request: HttpRequest) -> HttpResponse:
    return _receive(request, kind=Kind.SMS_DELIVERY, required=("id", "status"), handle=_delivery)


def _delivery(stored: InboundRequest, form: dict[str, str]) -> HttpResponse:
    message = outbox_delivery_report(
        provider_id=form["id"].strip(), status=form["status"], failure_reason=form.get("failureReason", "")
    )
    error = "" if message else "no outgoing SMS has this id"
    inbound_mark(request=stored, outcome=Outcome.HANDLED, error=error)
    return _text("ok")
