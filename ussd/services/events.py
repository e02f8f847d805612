"""Africa's Talking's end-of-session notifications: stored once per session, with the inputs typed
at a PIN screen masked by what the session knows (``ussd.services.sessions.session_pin_inputs``)."""

from django.db import IntegrityError, transaction

from ussd.models import UssdSessionEnd
from ussd.services.masking import mask_pin_inputs
from ussd.services.sessions import session_pin_inputs, session_pins_masked


def session_end_pins_masked(body: str) -> str:
    """The raw form of an end-of-session notification with the PINs in its ``input`` masked."""
    return session_pins_masked(body, field="input")


def _int_or_none(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def session_end_record(*, form: dict[str, str]) -> UssdSessionEnd | None:
    """Store one end-of-session notification. Returns the row, or ``None`` when this ``sessionId``
    was already recorded (a redelivery changes nothing)."""
    typed = form.get("input", "")
    pins = session_pin_inputs(session_id=form["sessionId"].strip(), typed=typed)
    try:
        with transaction.atomic():
            return UssdSessionEnd.objects.create(
                session_id=form["sessionId"][:100],
                phone=form.get("phoneNumber", "").strip()[:32],
                service_code=form.get("serviceCode", "")[:32],
                network_code=form.get("networkCode", "")[:16],
                status=form.get("status", "")[:16],
                duration_ms=_int_or_none(form.get("durationInMillis", "")),
                hops=_int_or_none(form.get("hopsCount", "")),
                input=mask_pin_inputs(typed, pins),
                last_app_response=form.get("lastAppResponse", ""),
                error_message=form.get("errorMessage", ""),
                cost=form.get("cost", "")[:32],
                ended_at=form.get("date", "")[:40],
            )
    except IntegrityError:
        if UssdSessionEnd.objects.filter(session_id=form["sessionId"][:100]).exists():
            return None
        raise
