"""The emulator's ledger: what the emulated paybill was paid, callbacks delivered or not."""

from decimal import Decimal
from typing import Any

from payments.emulator.models import EmulatedPayment
from payments.parsing import parse_trans_time


def ledger_record(payload: dict[str, Any], *, msisdn: str, callbacks_delivered: bool) -> EmulatedPayment:
    """Record a payment to the emulated paybill: ``payload`` is the confirmation M-Pesa built for it,
    ``msisdn`` the payer as ``2547XXXXXXXX`` (the payload may carry a digest or a masked number)."""
    return EmulatedPayment.objects.create(
        trans_id=payload["TransID"],
        short_code=payload["BusinessShortCode"],
        trans_time=parse_trans_time(payload["TransTime"]),
        amount=Decimal(payload["TransAmount"]),
        payload=payload,
        msisdn=msisdn.removeprefix("+"),
        callbacks_delivered=callbacks_delivered,
    )
