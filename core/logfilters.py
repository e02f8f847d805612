"""Logging filter: a last line of defence that masks any Kenyan phone number in a log record.

Code masks numbers itself (``core.phones.mask_phone``); this catches the one a developer forgets.
"""

import logging
import re

from core.phones import mask_phone

# +254 / 254 / 0 followed by a 7xx or 1xx mobile number; not inside a longer run of digits or hex.
_PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+?254|0)[17]\d{8}(?![0-9A-Za-z])")


def mask_phone_numbers(text: str) -> str:
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)


class MaskPhoneNumbersFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phone_numbers(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
