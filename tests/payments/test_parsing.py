import datetime
import json
from decimal import Decimal as D
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from payments.parsing import (
    MalformedCallback,
    classify_msisdn,
    normalize_bill_reference,
    parse_c2b_body,
    parse_trans_time,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "daraja"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_confirmation_with_hashed_msisdn():
    payload = parse_c2b_body(fixture("confirmation_hashed.json"))
    assert payload.trans_id == "RKL51ZDR4F"
    assert payload.amount == D("1500.00")
    assert payload.trans_time == datetime.datetime(
        2023, 11, 21, 12, 13, 25, tzinfo=ZoneInfo("Africa/Nairobi")
    )
    assert payload.trans_time.utcoffset() == datetime.timedelta(hours=3)
    assert payload.msisdn_kind == "hashed" and payload.msisdn_e164 is None
    assert payload.org_account_balance == D("25430.00")
    assert (payload.bill_reference, payload.first_name, payload.business_short_code) == (
        "LOAN-000123",
        "NICHOLAS",
        "600984",
    )


def test_amount_sent_as_a_json_number_never_goes_through_float():
    payload = parse_c2b_body(fixture("confirmation_plain_number_amount.json"))
    assert payload.amount == D("10.00")
    assert payload.org_account_balance == D("49197.00")
    assert payload.msisdn_kind == "plain" and payload.msisdn_e164 == "+254708374149"
    assert payload.bill_reference == "loan 123"


def test_masked_msisdn_and_empty_validation_balance():
    payload = parse_c2b_body(fixture("validation_masked_v2.json"))
    assert payload.msisdn_kind == "masked"
    assert payload.org_account_balance is None
    assert payload.amount == D("2300.00")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("8556A495C390F3BA95D2BDF6D06436F2FD09F516531F0A7CD9591C60812FA46D", "hashed"),
        ("2547 ***** 126", "masked"),
        ("25470****149", "masked"),
        ("254708374149", "plain"),
        ("", "missing"),
        ("12345", "plain"),  # digits, but no Kenyan number: plain, matching no one
        ("255712345678", "plain"),
    ],
)
def test_msisdn_kinds(raw, kind):
    assert classify_msisdn(raw)[0] == kind


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"\xff\xfe", "not JSON"),
        (b'{"TransAmount": "10"}', "TransID is missing"),
        (
            b'{"TransID": "RKL51ZDR4F", "BusinessShortCode": "600984", "TransTime": "20231121121325"}',
            "TransAmount",
        ),
        (
            b'{"TransID": "RKL51ZDR4F", "TransAmount": "ten", "BusinessShortCode": "1", "TransTime": "20231121121325"}',
            "not a number",
        ),
        (
            b'{"TransID": "RKL51ZDR4F", "TransAmount": 10.005, "BusinessShortCode": "1", "TransTime": "20231121121325"}',
            "more than two decimal places",
        ),
        (
            b'{"TransID": "RKL51ZDR4F", "TransAmount": "10", "BusinessShortCode": "1", "TransTime": "2023-11-21"}',
            "TransTime",
        ),
        (
            b'{"TransID": "RKL51ZDR4F", "TransAmount": "10", "TransTime": "20231121121325"}',
            "BusinessShortCode",
        ),
        (
            b'{"TransID": "<script>", "TransAmount": "10", "BusinessShortCode": "1", "TransTime": "20231121121325"}',
            "receipt",
        ),
        (
            b'{"TransID": "RKL51ZDR4F", "TransAmount": "10", "BusinessShortCode": {"a": 1}, "TransTime": "20231121121325"}',
            "text",
        ),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body, reason):
    with pytest.raises(MalformedCallback, match=reason):
        parse_c2b_body(body)


def test_bill_reference_normalisation():
    assert normalize_bill_reference(" loan-000 123 ") == "LOAN000123"
    assert normalize_bill_reference("") == ""


def test_every_callback_fixture_is_real_json():
    for path in [*FIXTURES.glob("confirmation_*.json"), *FIXTURES.glob("validation_*.json")]:
        assert "TransID" in json.loads(path.read_text())


@pytest.mark.parametrize(
    "raw",
    ["2023112112132", "202311211213255", "20231321121325", "20230230121325", "2023112112132x", "", None, {}],
)
def test_trans_time_is_exactly_fourteen_digits_of_a_real_time(raw):
    with pytest.raises(MalformedCallback, match="TransTime"):
        parse_trans_time(raw)


def test_trans_time_may_come_as_a_json_number():
    assert parse_trans_time(20231121121325) == datetime.datetime(
        2023, 11, 21, 12, 13, 25, tzinfo=ZoneInfo("Africa/Nairobi")
    )
