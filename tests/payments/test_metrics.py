"""The M-Pesa engine's metrics after real callbacks: counters, histograms, the database's gauges, and no
personal data anywhere in /metrics."""

import datetime
import json
from decimal import Decimal as D

import pytest
from django.utils import timezone

from core.phones import msisdn_hash
from payments.metrics import GAUGE_STATUSES, Outcome
from payments.models import CallbackRequest, MpesaConfiguration, MpesaTransaction
from payments.parsing import parse_c2b_body
from payments.services import transaction_process
from payments.services.monitoring import failure_rate_finding
from payments.services.storing import new_transaction
from tests.factories import BorrowerFactory, LoanFactory, MpesaConfigurationFactory
from tests.metrics import TOKEN, samples, scrape, scrape_text, value
from tests.payments.conftest import daraja_payload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("metrics_on")]

PAYER_PHONE = "254722000111"
PAYER_NAMES = ("WANJIKU", "AKINYI", "OTIENO")


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []


@pytest.fixture
def loan():
    borrower = BorrowerFactory(phones=["+254722000111"], full_name="Wanjiku Akinyi Otieno")
    return LoanFactory(
        loan_number="LOAN-000123", borrower=borrower, principal_disbursed=D("5000"), principal=D("5000")
    )


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def personal_payload(trans_id: str, **overrides) -> dict:
    """A confirmation carrying everything personal Daraja sends: a plain phone number, three names,
    the M-Pesa code, a phone number as the account."""
    first, middle, last = PAYER_NAMES
    personal = {"MSISDN": PAYER_PHONE, "FirstName": first, "MiddleName": middle, "LastName": last}
    return daraja_payload(
        "confirmation_hashed.json",
        **{**personal, "TransID": trans_id, "BillRefNumber": "0722000111", **overrides},
    )


def test_callbacks_are_counted_by_kind_and_outcome(client, post_callback, loan):
    before = scrape(client)
    post_callback("validation", daraja_payload("validation_masked_v2.json"))  # accepted
    post_callback("validation", daraja_payload("validation_masked_v2.json", BusinessShortCode="999999"))
    post_callback("confirmation", personal_payload("SAB7LQ2Y1M"))  # stored
    post_callback("confirmation", personal_payload("SAB7LQ2Y1M"))  # re-delivered: acknowledged again
    post_callback("confirmation", b"{not json")
    post_callback("confirmation", b'{"pad": "' + b"x" * (65 * 1024) + b'"}')
    post_callback("confirmation", personal_payload("SAB7LQ2Y2N"), token="guessed-token")
    client.get("/payments/c2b/guessed-token/confirmation/")  # a GET with an unknown token
    after = scrape(client)

    counted = {
        (kind, outcome): delta(before, after, "haven_callbacks_total", kind=kind, outcome=outcome)
        for kind in ("validation", "confirmation")
        for outcome in Outcome.ALL
    }
    assert {key: count for key, count in counted.items() if count} == {
        ("validation", "accepted"): 1,
        ("validation", "rejected"): 1,
        ("confirmation", "accepted"): 2,
        ("confirmation", "malformed"): 1,
        ("confirmation", "too_large"): 1,
        ("confirmation", "not_found"): 2,
    }
    assert delta(before, after, "haven_callback_seconds_count", kind="validation") == 2
    assert delta(before, after, "haven_callback_seconds_count", kind="confirmation") == 6
    assert delta(before, after, "haven_callback_seconds_sum", kind="confirmation") > 0
    # Buckets are cumulative: every answer is under the largest, and +Inf holds them all.
    assert delta(before, after, "haven_callback_seconds_bucket", kind="confirmation", le="+Inf") == 6


def test_refused_and_method_not_allowed_outcomes(client, post_callback, mpesa_config):
    mpesa_config.allowed_ips, mpesa_config.ip_policy = "196.201.214.200", "refuse"
    mpesa_config.save()
    before = scrape(client)
    assert post_callback("confirmation", personal_payload("SAB7LQ2Y1M")).status_code == 403
    assert client.get(f"/payments/c2b/{mpesa_config.callback_token}/validation/").status_code == 405
    after = scrape(client)
    assert delta(before, after, "haven_callbacks_total", kind="confirmation", outcome="refused") == 1
    assert delta(before, after, "haven_callbacks_total", kind="validation", outcome="method_not_allowed") == 1


def test_an_error_in_the_view_is_counted_as_an_error(client, post_callback, monkeypatch):
    def broken(*, inbound):
        raise RuntimeError("defect")

    monkeypatch.setattr("payments.views.callback_receive", broken)
    before = scrape(client)
    client.raise_request_exception = False
    response = post_callback("confirmation", personal_payload("SAB7LQ2Y1M"))
    assert response.status_code == 500
    after = scrape(client)
    assert delta(before, after, "haven_callbacks_total", kind="confirmation", outcome="error") == 1
    assert delta(before, after, "haven_callback_seconds_count", kind="confirmation") == 1


def test_processing_time_is_observed_by_the_status_reached(client, post_callback, loan):
    before = scrape(client)
    post_callback("confirmation", personal_payload("SAB7LQ2Y1M"))  # processed on commit (eager)
    post_callback(
        "confirmation",
        daraja_payload("confirmation_hashed.json", TransID="SAB7LQ2Y2N", BillRefNumber="nobody", MSISDN=""),
    )
    after = scrape(client)
    statuses = dict(MpesaTransaction.objects.values_list("trans_id", "status"))
    assert statuses == {"SAB7LQ2Y1M": "processed", "SAB7LQ2Y2N": "unmatched"}
    for status in ("processed", "unmatched"):
        assert delta(before, after, "haven_payment_processing_seconds_count", status=status) == 1
        assert delta(before, after, "haven_payment_processing_seconds_bucket", status=status, le="+Inf") == 1
    processed = MpesaTransaction.objects.get(trans_id="SAB7LQ2Y1M")
    assert delta(before, after, "haven_payment_processing_seconds_sum", status="processed") == pytest.approx(
        processed.processing_ms / 1000
    )


def _stored(trans_id: str, config, **fields) -> MpesaTransaction:
    tx = new_transaction(parse_c2b_body(json.dumps(personal_payload(trans_id), default=str)), config)
    tx.save(force_insert=True)
    if fields:
        MpesaTransaction.objects.filter(pk=tx.pk).update(**fields)
    return tx


def test_payment_gauges_come_from_the_database(client, mpesa_config, loan):
    now = timezone.now()
    assert value(scrape(client), "haven_oldest_waiting_payment_seconds") == 0
    _stored("SAB7LQ2A01", mpesa_config, received_at=now - datetime.timedelta(seconds=300))
    _stored("SAB7LQ2A02", mpesa_config)
    # Claimed by a worker (its lease runs) and waiting for a retry: both "processing".
    _stored("SAB7LQ2A03", mpesa_config, next_attempt_at=now + datetime.timedelta(minutes=2), attempts=1)
    _stored("SAB7LQ2A04", mpesa_config, next_attempt_at=now + datetime.timedelta(seconds=10), attempts=2)
    transaction_process(trans_id=_stored("SAB7LQ2A05", mpesa_config).trans_id)
    _stored("SAB7LQ2A06", mpesa_config, status="unmatched")
    _stored("SAB7LQ2A07", mpesa_config, status="failed")
    _stored("SAB7LQ2A08", mpesa_config, status="failed")
    _stored("SAB7LQ2A09", mpesa_config, status="held", held_reason="paid to short code 123456")

    scraped = scrape(client)
    by_status = {status: value(scraped, "haven_payments", status=status) for status in GAUGE_STATUSES}
    assert by_status == {
        "received": 2,
        "processing": 2,
        "processed": 1,
        "unmatched": 1,
        "failed": 2,
        "held": 1,
        "reversed": 0,
    }
    assert 300 <= value(scraped, "haven_oldest_waiting_payment_seconds") < 360


@pytest.mark.usefixtures("loan")
def test_no_label_and_no_line_carries_personal_data(client, post_callback, mpesa_config):
    hashed = daraja_payload("confirmation_hashed.json")
    personal = [
        personal_payload("SAB7LQ2Y1M"),  # processed, with a plain number and three names
        personal_payload("SAB7LQ2Y2N", BillRefNumber="someone else", MSISDN="254733999888"),  # unmatched
        hashed,
    ]
    for payload in personal:
        post_callback("validation", payload)
        post_callback("confirmation", payload)
    post_callback("confirmation", personal[0])  # a duplicate
    post_callback("confirmation", json.dumps(personal[1])[:-10].encode())  # malformed, names inside
    text = scrape_text(client)

    forbidden = {
        "SAB7LQ2Y1M",
        "SAB7LQ2Y2N",
        hashed["TransID"],
        hashed["MSISDN"],
        msisdn_hash("254722000111"),
        "254722000111",
        "722000111",
        "254733999888",
        "733999888",
        "0722000111",
        mpesa_config.callback_token,
        "Wanjiku",
        "Akinyi",
        "Otieno",
        hashed["FirstName"],
        "someone else",
    }
    lowered = text.lower()
    assert [word for word in forbidden if word.lower() in lowered] == []
    assert "haven_confirmation_last_age_seconds{short_code=" in text  # the paybill's own label is there
    allowed_labels = {
        "kind": set(CallbackRequest.Kind.values),  # validation, confirmation, the status query's answers
        "outcome": set(Outcome.ALL),
        "status": set(GAUGE_STATUSES),
        "channel": {"sms", "telegram"},
        "short_code": {mpesa_config.business_short_code},  # the lender's own paybill
        "le": None,  # histogram bucket bounds: numbers
    }
    for name, labels in samples(text):
        for label, label_value in labels:
            assert label in allowed_labels, (name, label)
            if allowed_labels[label] is None:
                assert float(label_value) >= 0, (name, label_value)
            else:
                assert label_value in allowed_labels[label], (name, label_value)


def test_the_last_pull_of_each_active_paybill_is_a_gauge(client, mpesa_config):
    now = timezone.now()
    assert not [key for key in scrape(client) if key[0].startswith("haven_pull_")]  # never pulled: no sample

    MpesaConfiguration.objects.filter(pk=mpesa_config.pk).update(
        last_pull_at=now - datetime.timedelta(minutes=20), last_pull_code="1001", last_pull_message="No data"
    )
    scraped = scrape(client)
    code = mpesa_config.business_short_code
    assert 1200 <= value(scraped, "haven_pull_last_age_seconds", short_code=code) < 1260
    assert ("haven_pull_last_ok", frozenset({"short_code": code, "code": "1001"}.items())) in scraped
    assert value(scraped, "haven_pull_last_ok", short_code=code, code="1001") == 0

    MpesaConfiguration.objects.filter(pk=mpesa_config.pk).update(last_pull_at=now, last_pull_code="1000")
    assert value(scrape(client), "haven_pull_last_ok", short_code=code, code="1000") == 1


def test_the_last_confirmation_of_each_active_paybill_is_a_gauge(client, post_callback, mpesa_config, loan):
    code = mpesa_config.business_short_code
    quiet = MpesaConfigurationFactory(business_short_code="600111")
    assert not [key for key in scrape(client) if key[0] == "haven_confirmation_last_age_seconds"]

    post_callback("confirmation", personal_payload("SAB7LQ2Y1M"))
    twenty_minutes_ago = timezone.now() - datetime.timedelta(minutes=20)
    MpesaTransaction.objects.update(received_at=twenty_minutes_ago)
    CallbackRequest.objects.update(received_at=twenty_minutes_ago)
    _stored("SAB7LQ2Y3P", quiet)  # a payment on a paybill switched off since: not watched
    MpesaConfiguration.objects.filter(pk=quiet.pk).update(is_active=False)
    scraped = scrape(client)
    assert 1200 <= value(scraped, "haven_confirmation_last_age_seconds", short_code=code) < 1260
    assert [key[1] for key in scraped if key[0] == "haven_confirmation_last_age_seconds"] == [
        frozenset({("short_code", code)})
    ]

    # A re-delivered confirmation makes no payment, but the callbacks reach us: the silence alert
    # counts it as an arrival, and so does the gauge.
    post_callback("confirmation", personal_payload("SAB7LQ2Y1M"))
    assert MpesaTransaction.objects.filter(config=mpesa_config).count() == 1
    assert value(scrape(client), "haven_confirmation_last_age_seconds", short_code=code) < 60


def test_recent_payments_are_the_failure_rate_alerts_figures(client, mpesa_config):
    now = timezone.now()
    minute = datetime.timedelta(minutes=1)
    within = [("processed", 1), ("processed", 29), ("unmatched", 5), ("failed", 10), ("failed", 2)]
    within += [("held", 3), ("received", 0)]
    older = [("unmatched", 31), ("failed", 45)]  # M-Pesa's time over 30 minutes ago: not counted
    for number, (status, age) in enumerate(within + older):
        _stored(f"SAB7LQ3A{number:02d}", mpesa_config, status=status, trans_time=now - age * minute)

    scraped = scrape(client)
    recent = {
        status: value(scraped, "haven_recent_payments", status=status)
        for status in MpesaTransaction.Status.values
    }
    assert recent == {"received": 1, "processed": 2, "unmatched": 1, "failed": 2, "held": 1, "reversed": 0}
    # The application's check reads the same figures: 3 of 7.
    assert failure_rate_finding(now=timezone.now()).detail.startswith(
        "3 of 7 payments in the last 30 min failed or found no borrower"
    )
