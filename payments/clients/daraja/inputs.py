"""The values Daraja accepts, and the checks run on a request's inputs before it is sent."""

from __future__ import annotations

import re
from datetime import datetime

from core.dates import NAIROBI
from core.exceptions import InvalidAmount
from core.money import to_money
from core.phones import mask_phone
from payments.clients.daraja.errors import DarajaError
from payments.codes import is_short_code

RESPONSE_TYPES = ("Completed", "Cancelled")
API_VERSIONS = ("v1", "v2")
COMMAND_IDS = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")
MSISDN_FORMATS = ("hashed", "masked", "plain")

_MSISDN = re.compile(r"^254\d{9}$")


def _whole_shillings(amount: object) -> int:
    try:
        value = to_money(amount)
    except InvalidAmount as exc:
        raise DarajaError(exc.detail, permanent=True) from None
    if value <= 0 or value != value.to_integral_value():
        raise DarajaError(f"M-Pesa amounts are whole shillings above zero, not {value}", permanent=True)
    return int(value)


def _check_short_code(short_code: object) -> str:
    text = str(short_code).strip()
    if not is_short_code(text):
        raise DarajaError(f"{text!r} is not an M-Pesa short code (5 to 7 digits)", permanent=True)
    return text


def _check_msisdn(msisdn: object) -> str:
    text = str(msisdn).strip().removeprefix("+")
    if not _MSISDN.match(text):
        raise DarajaError(f"{mask_phone(text)!r} is not a phone number written 254XXXXXXXXX", permanent=True)
    return text


def _nairobi_text(moment: datetime, label: str) -> str:
    if moment.tzinfo is None:
        raise DarajaError(f"{label} must be an aware datetime", permanent=True)
    return moment.astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M:%S")
