"""M-Pesa identifiers, checked the same way wherever they arrive: a receipt number (``TransID``, the
key every payment is stored by) and a short code (a paybill or till number)."""

import re

# ASCII only, and fullmatch: "\d" would take other scripts' digits and "$" a trailing newline.
_TRANS_ID = re.compile(r"[A-Za-z0-9]{6,32}", re.ASCII)
_SHORT_CODE = re.compile(r"[0-9]{5,7}", re.ASCII)


def is_trans_id(text: str) -> bool:
    """Whether ``text`` can be an M-Pesa receipt number (6 to 32 letters and digits)."""
    return _TRANS_ID.fullmatch(text) is not None


def is_short_code(text: str) -> bool:
    """Whether ``text`` can be an M-Pesa short code (5 to 7 digits)."""
    return _SHORT_CODE.fullmatch(text) is not None
