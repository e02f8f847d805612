"""Kenyan mobile numbers: parse any form to E.164, hash the way M-Pesa does, mask for logs."""

import hashlib
import re

import phonenumbers

from core.exceptions import InvalidPhoneNumber

_MOBILE_TYPES = {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
_SEPARATORS = re.compile(r"[\s\-().]")
_DIGITS_ONLY = re.compile(r"^\+?\d+$")


def normalize_phone(raw: str) -> str:
    """Return the E.164 form (``+254712345678``) of a Kenyan mobile number written any common way.

    Accepts ``0712345678``, ``712345678``, ``254712345678``, ``+254712345678``, ``+254 712 345 678``,
    ``" 254712345678"`` (a ``+`` decoded to a space in a form post) and the newer ``01xx`` numbers.
    Raises ``InvalidPhoneNumber`` for anything that is not a Kenyan mobile number.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhoneNumber("phone number is empty")
    text = _SEPARATORS.sub("", raw)
    if text.startswith("00"):
        text = "+" + text[2:]
    # phonenumbers reads letters as keypad digits and drops trailing text ("0722-OOO-OO8" with the
    # letter O, "0712345678 ext 12"): a typo must be refused, never become someone else's number.
    if not _DIGITS_ONLY.match(text):
        raise InvalidPhoneNumber(f"{_for_message(raw)!r} is not a phone number")
    try:
        number = phonenumbers.parse(text, "KE")
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber(f"{_for_message(raw)!r} is not a phone number") from None
    if (
        number.country_code != 254
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.number_type(number) not in _MOBILE_TYPES
    ):
        raise InvalidPhoneNumber(f"{_for_message(raw)!r} is not a Kenyan mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _for_message(raw: str) -> str:
    # Input without digits cannot leak a number: show it (shortened) so the person sees what they typed.
    if not any(ch.isdigit() for ch in raw):
        return raw.strip()[:20]
    return mask_phone(raw)


def try_normalize_phone(raw: str) -> str | None:
    """Like ``normalize_phone`` but returns ``None`` instead of raising."""
    try:
        return normalize_phone(raw)
    except InvalidPhoneNumber:
        return None


def msisdn_hash(e164: str) -> str:
    """SHA-256 hex digest of the number written ``254XXXXXXXXX``, as M-Pesa sends hashed MSISDNs."""
    return hashlib.sha256(e164.removeprefix("+").encode("ascii")).hexdigest()


def mask_phone(raw: str) -> str:
    """Mask a phone number for logs and API output: ``+254712345678`` -> ``2547*****678``.

    Works on any input: what is not a recognisable number keeps at most its first four and last
    three digits.
    """
    digits = re.sub(r"\D", "", raw or "")
    if len(digits) == 10 and digits.startswith("0"):
        digits = "254" + digits[1:]
    elif len(digits) == 9:
        digits = "254" + digits
    if len(digits) <= 7:
        return "*" * len(digits)
    return digits[:4] + "*" * (len(digits) - 7) + digits[-3:]
