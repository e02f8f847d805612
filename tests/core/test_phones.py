import hashlib

import pytest

from core.exceptions import InvalidPhoneNumber
from core.phones import mask_phone, msisdn_hash, normalize_phone, try_normalize_phone


@pytest.mark.parametrize(
    "raw",
    [
        "0712345678",
        "712345678",
        "254712345678",
        "+254712345678",
        "+254 712 345 678",
        " 254712345678",  # a "+" decoded to a space in a form post
        "0712-345-678",
        "00254712345678",
    ],
)
def test_every_kenyan_form_normalises_to_e164(raw):
    assert normalize_phone(raw) == "+254712345678"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0110123456", "+254110123456"), ("0115123456", "+254115123456"), ("254100123456", "+254100123456")],
)
def test_newer_01xx_numbers(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("hello", "not a phone number"),
        ("07123", "not a Kenyan mobile number"),
        ("0201234567", "not a Kenyan mobile number"),  # Nairobi landline
        ("+255712345678", "not a Kenyan mobile number"),  # Tanzania
        ("+2547123456789", "not a Kenyan mobile number"),
        ("0722-OOO-OO8", "not a phone number"),  # letter O: not keypad digits
        ("0712345678 ext 12", "not a phone number"),
        ("254 712345678x", "not a phone number"),
    ],
)
def test_refuses_what_is_not_a_kenyan_mobile(raw, reason):
    with pytest.raises(InvalidPhoneNumber, match=reason):
        normalize_phone(raw)
    assert try_normalize_phone(raw) is None


def test_error_message_does_not_echo_the_full_number():
    with pytest.raises(InvalidPhoneNumber) as excinfo:
        normalize_phone("+255712345678")
    assert "255712345678" not in excinfo.value.detail


def test_hash_matches_what_mpesa_sends():
    # The documented Daraja example: sha256("254722000000").
    assert msisdn_hash("+254722000000") == "8556a495c390f3ba95d2bdf6d06436f2fd09f516531f0a7cd9591c60812fa46d"
    assert msisdn_hash("+254712345678") == hashlib.sha256(b"254712345678").hexdigest()


@pytest.mark.parametrize(
    "raw", ["+254712345678", "254712345678", "0712345678", "712345678", "+254 712 345 678"]
)
def test_mask_keeps_prefix_and_suffix_only(raw):
    assert mask_phone(raw) == "2547*****678"


def test_mask_of_odd_input_reveals_little():
    assert mask_phone("") == ""
    assert mask_phone("12345") == "*****"
    assert mask_phone("+2547123456789012") == "2547*********012"


def test_error_for_text_without_digits_shows_what_was_typed():
    with pytest.raises(InvalidPhoneNumber, match="'abc' is not a phone number"):
        normalize_phone("abc")
