"""Africa's Talking's end-of-session notifications: stored once per session, PINs masked."""

import re

from django.db import IntegrityError, transaction

from ussd.models import UssdSessionEnd

# Everything the caller typed, joined by "*". Menu choices are one or two digits; a PIN is four.
_PIN = re.compile(r"(?<![^*])\d{4}(?![^*])")


def mask_pins(typed: str) -> str:
    """``"1*4821*2"`` -> ``"1*****2"``: every four-digit input masked (a PIN, whatever the screen)."""
    return _PIN.sub("****", typed)


def _int_or_none(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def session_end_record(*, form: dict[str, str]) -> UssdSessionEnd | None:
    """Store one end-of-session notification. Returns the row, or ``None`` when this ``sessionId``
    was already recorded (a redelivery changes nothing)."""
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
                input=mask_pins(form.get("input", "")),
                last_app_response=form.get("lastAppResponse", ""),
                error_message=form.get("errorMessage", ""),
                cost=form.get("cost", "")[:32],
                ended_at=form.get("date", "")[:40],
            )
    except IntegrityError:
        if UssdSessionEnd.objects.filter(session_id=form["sessionId"][:100]).exists():
            return None
        raise
