"""M-Pesa identifiers, checked the same way wherever they arrive: a receipt number (``TransID``, the
key every payment is stored by) and a short code (a paybill or till number). A receipt number has two
checks: ``is_trans_id`` for what M-Pesa and Daraja send, ``is_issued_trans_id`` for a person's text."""

import re

# ASCII only, and fullmatch: "\d" would take other scripts' digits and "$" a trailing newline.
_TRANS_ID = re.compile(r"[A-Za-z0-9]{6,32}", re.ASCII)
_SHORT_CODE = re.compile(r"[0-9]{5,7}", re.ASCII)
# Ten upper-case letters and digits, a letter first, at least one digit ("RKL51ZDR4F").
_ISSUED_TRANS_ID = re.compile(r"(?=.*[0-9])[A-Z][A-Z0-9]{9}", re.ASCII)


def is_trans_id(text: str) -> bool:
    """Whether ``text`` can be an M-Pesa receipt number (6 to 32 letters and digits)."""
    return _TRANS_ID.fullmatch(text) is not None


def is_issued_trans_id(text: str) -> bool:
    """Whether ``text`` has the shape M-Pesa gives the receipt numbers it issues today (ten upper-case
    letters and digits, a letter first, at least one digit), for words a person typed.

    Stricter than ``is_trans_id`` on purpose. What Daraja sends is stored whatever its length (the
    sandbox and older receipts differ), but in free text the same looseness would take a word for a
    receipt: "MOVE PAYMENT LOAN-000102" would look for the payment numbered "PAYMENT" where the
    borrower meant their latest one."""
    return _ISSUED_TRANS_ID.fullmatch(text) is not None


def is_short_code(text: str) -> bool:
    """Whether ``text`` can be an M-Pesa short code (5 to 7 digits)."""
    return _SHORT_CODE.fullmatch(text) is not None
