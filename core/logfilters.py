"""Logging: a last line of defence that masks Kenyan phone numbers and callback tokens in what gets written.

Code masks numbers itself (``core.phones.mask_phone``); this catches the one a developer forgets,
in messages, in their arguments and in tracebacks, for every logger that reaches the project's
handler (settings.LOGGING routes Django's and Celery's loggers there too).
"""

import logging
import re

from core.phones import mask_phone

# +254 / %2B254 / 254 / 0 and a 7xx or 1xx mobile number, digit groups maybe split by a space or a
# dash, or the bare nine digits; never inside a longer run of digits or letters (digests, codes).
_PHONE = re.compile(
    r"(?<![0-9A-Za-z])(?:(?:%2B|\+)?254[\s-]?|0)?[17]\d{2}[\s-]?\d{3}[\s-]?\d{3}(?![0-9A-Za-z])"
)


# Callback URLs carry the secret that authenticates Safaricom's calls: /payments/c2b/<token>/...
_CALLBACK_TOKEN = re.compile(r"(/payments/c2b/)[^/\s?\"']+")
# Africa's Talking's callbacks carry theirs in the query string: /ussd/callback/?secret=...
_SECRET_PARAMETER = re.compile(r"([?&]secret=)[^&\s\"']+")


def mask_phone_numbers(text: str) -> str:
    return _PHONE.sub(lambda m: mask_phone(m.group(0).removeprefix("%2B")), text)


def redact(text: str) -> str:
    """Phone numbers masked and callback tokens removed: what any log line may show."""
    return _SECRET_PARAMETER.sub(r"\1<secret>", _CALLBACK_TOKEN.sub(r"\1<token>", mask_phone_numbers(text)))


class MaskingFormatter(logging.Formatter):
    """Formats as usual, then masks phone numbers and callback tokens in the whole line, traceback
    included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
