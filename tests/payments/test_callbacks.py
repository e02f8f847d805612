"""Daraja callbacks over HTTP: stored first, answered as Daraja expects, processed after commit."""

import json
import logging
from decimal import Decimal as D

import kombu.pools
import pytest

from config.celery import app as celery_app
from core.models import Loan
from core.phones import msisdn_hash
from payments.models import CallbackRequest, MpesaConfiguration, MpesaTransaction
from payments.services.callbacks import config_cache_clear
from tests.factories import BorrowerFactory, LoanFactory
from tests.payments.conftest import FIXTURES, daraja_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def loan():
    borrower = BorrowerFactory(phones=["+254722000000"], full_name="Nicholas Kiprono")
    return LoanFactory(
        loan_number="LOAN-000123", borrower=borrower, principal_disbursed=D("5000"), principal=D("5000")
    )


def test_confirmation_is_stored_acknowledged_and_posted(post_callback, loan, monkeypatch):
    from payments.tasks import drain_received_task

    enqueued = []
    monkeypatch.setattr(drain_received_task, "delay", lambda: enqueued.append("drain"))
    response = post_callback("confirmation", daraja_payload("confirmation_hashed.json"))

    assert response.status_code == 200
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    assert enqueued == ["drain", "drain"]  # the doorbell rang once the row was committed
    # The request is stored raw on the payment row itself, in the same INSERT.
    assert not CallbackRequest.objects.exists()
    tx = MpesaTransaction.objects.get()
    assert tx.source_ip == "127.0.0.1" and tx.raw_headers["Content-Type"] == "application/json"
    assert json.loads(tx.raw_body)["TransID"] == "RKL51ZDR4F"
    assert (tx.trans_id, tx.amount, tx.msisdn_kind) == ("RKL51ZDR4F", D("1500.00"), "hashed")
    assert tx.status == "received"
    drain_received_task()
    tx.refresh_from_db()
    assert tx.status == "processed"
    assert (tx.identified_by, tx.match_strategy, tx.borrower) == (
        "bill_reference",
        "bill_reference",
        loan.borrower,
    )
    assert tx.notes[0] == "bill reference 'LOAN-000123' matched LOAN-000123"
    loan.refresh_from_db()
    assert loan.outstanding == D("3500.00")


def test_amount_as_a_json_number_is_read_exactly(post_callback, db):
    body = (FIXTURES / "confirmation_plain_number_amount.json").read_bytes()
    body = body.replace(b'"600638"', b'"600984"').replace(b"10,", b"10.10,")
    response = post_callback("confirmation", body)
    assert response.status_code == 200
    assert MpesaTransaction.objects.get().amount == D("10.10")


def test_the_same_trans_id_again_answers_success_and_creates_nothing(post_callback, loan):
    payload = daraja_payload("confirmation_hashed.json")
    first = post_callback("confirmation", payload)
    second = post_callback("confirmation", payload)
    assert first.json() == second.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    assert MpesaTransaction.objects.count() == 1
    # The second delivery is kept as evidence, as a duplicate.
    duplicate = CallbackRequest.objects.get()
    assert (duplicate.kind, duplicate.outcome, duplicate.result_code) == ("confirmation", "duplicate", "0")
    assert duplicate.body == MpesaTransaction.objects.get().raw_body
    loan.refresh_from_db()
    assert loan.outstanding == D("3500.00")  # posted once


def test_wrong_token_is_404_and_nothing_is_stored(post_callback, caplog):
    with caplog.at_level("WARNING"):
        response = post_callback(
            "confirmation", daraja_payload("confirmation_hashed.json"), token="guessed-token"
        )
    assert response.status_code == 404
    assert not CallbackRequest.objects.exists() and not MpesaTransaction.objects.exists()
    assert "unknown token from 127.0.0.1" in caplog.text


def test_inactive_configuration_token_is_404(post_callback, mpesa_config):
    MpesaConfiguration.objects.filter(pk=mpesa_config.pk).update(is_active=False)
    assert post_callback("validation", daraja_payload("confirmation_hashed.json")).status_code == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b'{"TransID": "RKL51ZDR4F"}', "TransAmount is missing"),
        (
            json.dumps(
                {**daraja_payload("confirmation_hashed.json"), "TransAmount": "0"}, default=str
            ).encode(),
            "more than zero",
        ),
    ],
)
def test_malformed_confirmation_is_400_and_kept_for_staff(post_callback, body, reason):
    response = post_callback("confirmation", body)
    assert response.status_code == 400
    assert response.json()["ResultCode"] == "C2B00016"
    assert reason in response.json()["ResultDesc"]
    raw = CallbackRequest.objects.get()
    assert raw.outcome == "malformed" and reason in raw.error
    assert raw.body == body.decode()
    assert not MpesaTransaction.objects.exists()


def test_a_nul_byte_or_bad_utf8_in_the_body_is_kept_as_an_escape(post_callback):
    body = b'{"TransID": "RKL51ZDR4F\x00", "Name": "\xff"}'
    response = post_callback("confirmation", body)
    assert response.status_code == 400
    raw = CallbackRequest.objects.get()
    assert raw.outcome == "malformed" and raw.body == '{"TransID": "RKL51ZDR4F\\x00", "Name": "\\xff"}'


def test_escapes_no_database_can_hold_are_cleaned_and_the_payment_kept(post_callback, loan):
    # \u0000 and a lone surrogate are valid JSON escapes but no text column holds them.
    body = (
        json.dumps(daraja_payload("confirmation_hashed.json"))
        .replace('"FirstName": "NICHOLAS"', '"FirstName": "NICHOLAS\\u0000"')
        .replace('"LastName": ""', '"LastName": "KIP\\ud800"')
    )
    response = post_callback("confirmation", body.encode())
    assert response.status_code == 200 and response.json()["ResultCode"] == 0
    tx = MpesaTransaction.objects.get()
    assert (tx.first_name, tx.last_name, tx.status) == ("NICHOLAS", "KIP?", "processed")
    assert tx.raw_body == body


def test_a_reference_longer_in_upper_case_still_fits(post_callback, db):
    response = post_callback(
        "confirmation", daraja_payload("confirmation_hashed.json", BillRefNumber="straße " * 9 + "ß")
    )
    assert response.status_code == 200
    tx = MpesaTransaction.objects.get()
    assert len(tx.bill_reference) == 64 and tx.bill_reference_normalized == ("STRASSE" * 10)[:64]


@pytest.mark.postgres("only PostgreSQL enforces column sizes")
@pytest.mark.django_db(transaction=True)  # as the view runs: the failed INSERT ends no outer transaction
def test_a_value_that_does_not_fit_its_column_is_400_and_kept(post_callback, monkeypatch):
    monkeypatch.setattr("payments.services.storing.normalize_bill_reference", lambda raw: "X" * 65)
    response = post_callback("confirmation", daraja_payload("confirmation_hashed.json"))
    assert response.status_code == 400
    assert response.json() == {"ResultCode": "C2B00016", "ResultDesc": "Rejected: malformed payload"}
    raw = CallbackRequest.objects.get()
    assert raw.outcome == "malformed" and "does not fit the transaction record" in raw.error
    assert json.loads(raw.body)["TransID"] == "RKL51ZDR4F"
    assert not MpesaTransaction.objects.exists()


def test_oversized_body_is_refused_without_being_read(post_callback):
    body = b'{"pad": "' + b"x" * (65 * 1024) + b'"}'
    response = post_callback("confirmation", body)
    assert response.status_code == 413
    raw = CallbackRequest.objects.get()
    assert raw.outcome == "malformed" and "over the 64 KB limit" in raw.error
    assert raw.body == ""


def test_only_post_is_allowed_and_other_methods_with_a_wrong_token_are_404(client, mpesa_config, caplog):
    response = client.get(f"/payments/c2b/{mpesa_config.callback_token}/confirmation/")
    assert (response.status_code, response["Allow"]) == (405, "POST")
    with caplog.at_level("WARNING"):
        assert client.get("/payments/c2b/guessed/confirmation/").status_code == 404
    assert "unknown token from 127.0.0.1" in caplog.text


def test_validation_accepts_a_good_payment_and_posts_nothing(post_callback, loan):
    response = post_callback("validation", daraja_payload("confirmation_hashed.json", OrgAccountBalance=""))
    assert response.status_code == 200
    assert response.json() == {"ResultCode": "0", "ResultDesc": "Accepted"}
    assert not MpesaTransaction.objects.exists()
    loan.refresh_from_db()
    assert loan.outstanding == D("5000.00")
    assert CallbackRequest.objects.get().outcome == "accepted"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"BusinessShortCode": "999999"}, "C2B00015"),
        ({"TransAmount": "0.00"}, "C2B00013"),
        ({"TransAmount": "-5"}, "C2B00013"),
        ({"TransAmount": "250000.01"}, "C2B00013"),
        ({"TransAmount": "1e9"}, "C2B00013"),
        ({"TransAmount": "lots"}, "C2B00016"),
    ],
)
def test_validation_rejections(post_callback, overrides, code):
    response = post_callback("validation", daraja_payload("confirmation_hashed.json", **overrides))
    assert response.status_code == 200
    assert response.json()["ResultCode"] == code
    assert CallbackRequest.objects.get().result_code == code


def test_validation_reject_unknown_policy(post_callback, mpesa_config, loan):
    mpesa_config.validation_policy = MpesaConfiguration.ValidationPolicy.REJECT_UNKNOWN
    mpesa_config.save()
    stranger = daraja_payload(
        "confirmation_hashed.json", BillRefNumber="rent", MSISDN=msisdn_hash("+254799000111")
    )
    assert post_callback("validation", stranger).json() == {
        "ResultCode": "C2B00012",
        "ResultDesc": "Rejected: invalid account number",
    }
    by_phone = daraja_payload(
        "confirmation_hashed.json", BillRefNumber="rent", MSISDN=msisdn_hash("+254722000000")
    )
    assert post_callback("validation", by_phone).json()["ResultCode"] == "0"
    assert post_callback("validation", daraja_payload("confirmation_hashed.json")).json()["ResultCode"] == "0"


def test_malformed_validation_says_why(post_callback):
    response = post_callback("validation", b"[]")
    assert response.json() == {"ResultCode": "C2B00016", "ResultDesc": "Rejected: body is not a JSON object"}


def test_source_address_policy(post_callback, mpesa_config, loan):
    mpesa_config.allowed_ips = "196.201.214.200, 196.201.214.206"
    mpesa_config.ip_policy = MpesaConfiguration.IpPolicy.REFUSE
    mpesa_config.save()
    config_cache_clear()  # as if CONFIG_CACHE_SECONDS had passed
    refused = post_callback("confirmation", daraja_payload("confirmation_hashed.json"))
    assert refused.status_code == 403
    assert CallbackRequest.objects.get().outcome == "refused"
    assert not MpesaTransaction.objects.exists()

    allowed = post_callback(
        "confirmation", daraja_payload("confirmation_hashed.json"), REMOTE_ADDR="196.201.214.206"
    )
    assert allowed.status_code == 200

    mpesa_config.ip_policy = MpesaConfiguration.IpPolicy.LOG
    mpesa_config.save()
    config_cache_clear()  # as if CONFIG_CACHE_SECONDS had passed
    logged = post_callback("confirmation", daraja_payload("confirmation_hashed.json", TransID="RKL51ZDR5G"))
    assert logged.status_code == 200
    assert MpesaTransaction.objects.count() == 2


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(post_callback, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.5"]
    payload = daraja_payload("confirmation_hashed.json")
    post_callback(
        "confirmation", payload, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="6.6.6.6, 196.201.214.200"
    )
    post_callback("confirmation", payload, REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="196.201.214.200")
    assert MpesaTransaction.objects.get().source_ip == "196.201.214.200"
    assert CallbackRequest.objects.get().source_ip == "10.9.9.9"  # the duplicate


def test_secret_headers_are_not_stored(post_callback):
    post_callback(
        "confirmation",
        daraja_payload("confirmation_hashed.json"),
        HTTP_AUTHORIZATION="Bearer abc",
        HTTP_X_REQUEST_ID="r-1",
    )
    post_callback("validation", daraja_payload("confirmation_hashed.json"), HTTP_COOKIE="sessionid=x")
    for headers in (MpesaTransaction.objects.get().raw_headers, CallbackRequest.objects.get().headers):
        assert not {"Authorization", "Cookie"} & set(headers)
        assert headers["Content-Type"] == "application/json"
    assert MpesaTransaction.objects.get().raw_headers["X-Request-Id"] == "r-1"


def test_loan_untouched_when_unmatched(post_callback, loan):
    post_callback("confirmation", daraja_payload("confirmation_masked.json", BusinessShortCode="600984"))
    tx = MpesaTransaction.objects.get()
    assert tx.status == "unmatched" and tx.borrower is None
    assert Loan.objects.get().outstanding == D("5000.00")


def test_configuration_changes_reach_callbacks_within_the_cache_time(post_callback, mpesa_config):
    payload = daraja_payload("confirmation_hashed.json")
    assert post_callback("validation", payload).status_code == 200
    MpesaConfiguration.objects.filter(pk=mpesa_config.pk).update(is_active=False)
    assert post_callback("validation", payload).status_code == 200  # still cached in this process
    config_cache_clear()  # CONFIG_CACHE_SECONDS later
    assert post_callback("validation", payload).status_code == 404


# --- Held for staff: another short code, more than MPESA_MAX_AMOUNT ---------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"BusinessShortCode": "999999"}, "paid to short code 999999, not this paybill (600984)"),
        (
            {"TransAmount": "1e9"},
            "KES 1,000,000,000.00 is more than one M-Pesa payment can be (MPESA_MAX_AMOUNT, KES 250,000.00)",
        ),
    ],
    ids=["other-short-code", "over-max-amount"],
)
def test_a_confirmation_that_should_not_post_is_kept_and_held_for_staff(
    post_callback, loan, overrides, reason
):
    from core.models import OutboxMessage
    from tests.factories import AdminFactory

    admin = AdminFactory(phone="+254700999888")
    response = post_callback("confirmation", daraja_payload("confirmation_hashed.json", **overrides))

    # Safaricom is told it arrived (the money has moved); it is kept, raw request included.
    assert response.status_code == 200
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    tx = MpesaTransaction.objects.get()
    assert json.loads(tx.raw_body)["TransID"] == "RKL51ZDR4F"
    # ... and never posted by itself.
    assert (tx.status, tx.held_reason, tx.borrower_id) == ("held", reason, None)
    assert not tx.allocations.exists()
    loan.refresh_from_db()
    assert loan.outstanding == D("5000.00")
    assert f"held for staff, not posted: {reason}" in tx.notes
    assert list(MpesaTransaction.objects.needing_attention()) == [tx]
    alert = OutboxMessage.objects.get(user=admin)
    assert alert.context == {"kind": "held", "trans_id": "RKL51ZDR4F"}
    assert reason in alert.body and "RKL51ZDR4F" in alert.body


def test_the_max_amount_is_a_setting_and_the_ceiling_itself_posts(post_callback, loan, settings):
    settings.MPESA_MAX_AMOUNT = D("4000.00")
    post_callback("confirmation", daraja_payload("confirmation_hashed.json", TransAmount="4000.00"))
    post_callback(
        "confirmation",
        daraja_payload("confirmation_hashed.json", TransID="RKL51ZDR4G", TransAmount="4000.01"),
    )

    statuses = dict(MpesaTransaction.objects.values_list("trans_id", "status"))
    assert statuses == {"RKL51ZDR4F": "processed", "RKL51ZDR4G": "held"}


# --- How the body arrives ------------------------------------------------------------------------------


def test_a_chunked_confirmation_without_content_length_is_read_whole(client, mpesa_config, loan):
    import io

    body = json.dumps(daraja_payload("confirmation_hashed.json"), default=str).encode()
    # What gunicorn hands over for Transfer-Encoding: chunked: no CONTENT_LENGTH, the decoded body
    # in wsgi.input.
    response = client.generic(
        "POST",
        f"/payments/c2b/{mpesa_config.callback_token}/confirmation/",
        b"",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"CONTENT_LENGTH": "", "wsgi.input": io.BytesIO(body)},
    )

    assert (response.status_code, response.json()) == (200, {"ResultCode": 0, "ResultDesc": "Success"})
    assert MpesaTransaction.objects.get().raw_body == body.decode()


def test_a_post_without_the_trailing_slash_is_a_clear_404(client, mpesa_config):
    path = f"/payments/c2b/{mpesa_config.callback_token}/confirmation"

    response = client.post(path, data=b"{}", content_type="application/json")

    assert (response.status_code, response.json()) == (
        404,
        {"detail": f"not found: this address ends with a slash ({path}/)"},
    )
    assert client.get("/payments/dashboard").status_code == 301  # a GET still follows the slash


@pytest.fixture
def new_broker_connections(monkeypatch):
    """Broker connection pools of this test's own. Celery keeps its pools for the whole process and
    kombu describes a connection (where it warned) only when it opens one: after any earlier test's
    payment this test would open none, and see no warning whatever the broker URL."""
    monkeypatch.setattr(
        kombu.pools, "connections", kombu.pools.Connections(limit=kombu.pools.use_global_limit)
    )
    monkeypatch.setattr(kombu.pools, "producers", kombu.pools.Producers(limit=kombu.pools.use_global_limit))
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)


def test_a_payment_on_the_embedded_default_logs_no_broker_warning(
    post_callback, loan, caplog, new_broker_connections
):
    # Tasks run in-process there; kombu used to warn "No hostname was supplied" on every payment.
    caplog.set_level(logging.DEBUG, logger="kombu")

    post_callback("confirmation", daraja_payload("confirmation_hashed.json"))

    assert MpesaTransaction.objects.get().status == "processed"
    assert [record.getMessage() for record in caplog.records if record.name.startswith("kombu")] == []
    # The capture saw the payment's own log lines: nothing reconfigured logging under it.
    assert any(record.name == "payments.services.processing" for record in caplog.records)
