"""The values Daraja accepts, and the checks run on a request's inputs before it is sent."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from core.exceptions import InvalidAmount
from core.money import to_money
from core.phones import mask_phone
from payments.clients.daraja.errors import DarajaError

NAIROBI = ZoneInfo("Africa/Nairobi")

RESPONSE_TYPES = ("Completed", "Cancelled")
API_VERSIONS = ("v1", "v2")
COMMAND_IDS = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")
MSISDN_FORMATS = ("hashed", "masked", "plain")

_SHORT_CODE = re.compile(r"^\d{5,7}$")
_MSISDN = re.compile(r"^254\d{9}$")
_TRANS_ID = re.compile(r"^[A-Za-z0-9]{6,32}$")


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
    if not _SHORT_CODE.match(text):
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
