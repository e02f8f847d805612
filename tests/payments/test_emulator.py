"""The Daraja emulator over real HTTP (pytest-django's live server), driven by the real DarajaClient.

Callbacks go to stub views in ``tests.payments.emulator_urls`` that record what they receive; one test
uses the project's real callback URLs and is skipped until ``payments.views`` exists.
"""

import hashlib
import json
import re
from datetime import timedelta

import httpx
import pytest
from django.core.cache import cache
from django.utils import timezone

from payments.clients.daraja import DarajaClient, DarajaError
from payments.parsing import parse_trans_time
from tests.factories import MpesaConfigurationFactory
from tests.payments import emulator_urls
from tests.payments.emulator_urls import closed_port_url, payloads, stub_url

pytestmark = pytest.mark.urls("tests.payments.emulator_urls")

SHORT_CODE = "600984"


@pytest.fixture
def local_paybill(transactional_db):
    # The emulator pays only a short code configured in the local environment.
    return MpesaConfigurationFactory(business_short_code=SHORT_CODE, base_url="http://127.0.0.1")


@pytest.fixture
def client(emulator_url, local_paybill) -> DarajaClient:
    with DarajaClient(emulator_url, "local-key", "local-secret", timeout=20, environment="local") as daraja:
        yield daraja


def register_stubs(client, live_server, behaviour="accept", response_type="Completed", validation_url=None):
    return client.register_urls(
        SHORT_CODE,
        response_type,
        stub_url(live_server.url, behaviour, "confirmation"),
        validation_url or stub_url(live_server.url, behaviour, "validation"),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def raw_token(emulator_url: str, key: str = "local-key") -> str:
    response = httpx.get(
        f"{emulator_url}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(key, "local-secret"),
    )
    assert response.status_code == 200
    return response.json()["access_token"]


# --- OAuth --------------------------------------------------------------------------------------


def test_oauth_answers_like_daraja(emulator_url):
    response = httpx.get(
        f"{emulator_url}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=("local-key", "local-secret"),
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in"}
    assert body["expires_in"] == "3599" and len(body["access_token"]) >= 20


@pytest.mark.parametrize(
    ("params", "auth", "code"),
    [
        ({"grant_type": "client_credentials"}, None, "400.008.01"),
        ({"grant_type": "client_credentials"}, ("local-key", ""), "400.008.01"),
        ({"grant_type": "password"}, ("local-key", "local-secret"), "400.008.02"),
    ],
    ids=["no-basic-auth", "empty-secret", "wrong-grant"],
)
def test_oauth_refuses_missing_credentials(emulator_url, params, auth, code):
    response = httpx.get(f"{emulator_url}/oauth/v1/generate", params=params, auth=auth)

    assert response.status_code == 400
    assert response.json()["errorCode"] == code


def test_a_new_token_invalidates_the_previous_one(emulator_url, live_server):
    body = {
        "ShortCode": SHORT_CODE,
        "ResponseType": "Completed",
        "ConfirmationURL": stub_url(live_server.url, "accept", "confirmation"),
        "ValidationURL": stub_url(live_server.url, "accept", "validation"),
    }
    first = raw_token(emulator_url)
    second = raw_token(emulator_url)

    old = httpx.post(f"{emulator_url}/mpesa/c2b/v2/registerurl", json=body, headers=bearer(first))
    new = httpx.post(f"{emulator_url}/mpesa/c2b/v2/registerurl", json=body, headers=bearer(second))

    assert (old.status_code, old.json()["errorCode"]) == (404, "404.001.03")
    assert new.status_code == 200


def test_client_recovers_when_another_process_took_a_new_token(client, emulator_url, live_server):
    register_stubs(client, live_server)
    cached = cache.get(client._token_cache_key)
    raw_token(emulator_url)  # invalidates the client's cached token, as another app instance would

    register_stubs(client, live_server)

    assert cache.get(client._token_cache_key) not in (None, cached)


def test_disabled_emulator_answers_404(emulator_url, settings):
    settings.MPESA_EMULATOR_ENABLED = False

    response = httpx.get(
        f"{emulator_url}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=("local-key", "local-secret"),
    )

    assert response.status_code == 404


# --- Register URL -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_register_stores_the_urls_and_answers_like_daraja(client, live_server, version):
    result = client.register_urls(
        SHORT_CODE,
        "Cancelled",
        stub_url(live_server.url, "accept", "confirmation"),
        stub_url(live_server.url, "accept", "validation"),
        version=version,
    )

    assert result.api_version == version
    assert set(result.answer) == {"OriginatorCoversationID", "ResponseCode", "ResponseDescription"}
    assert (result.answer["ResponseCode"], result.answer["ResponseDescription"]) == ("0", "Success")
    assert cache.get(f"daraja-emulator:urls:{SHORT_CODE}") == {
        "response_type": "Cancelled",
        "confirmation_url": stub_url(live_server.url, "accept", "confirmation"),
        "validation_url": stub_url(live_server.url, "accept", "validation"),
        "version": version,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ValidationURL", "http://127.0.0.1:8000/mpesa/validation/"),
        ("ConfirmationURL", "http://127.0.0.1:8000/SQL/confirmation/"),
        ("ResponseType", "completed"),
        ("ShortCode", "60"),
        # Digits of other scripts (str.isdigit() takes them): Arabic-Indic, full-width, superscript.
        ("ShortCode", "\u0666\u0660\u0660\u0669\u0668\u0664"),
        ("ShortCode", "\uff16\uff10\uff10\uff19\uff18\uff14"),
        ("ShortCode", "60098\u00b2"),
    ],
)
def test_register_applies_darajas_rules(emulator_url, field, value):
    body = {
        "ShortCode": SHORT_CODE,
        "ResponseType": "Completed",
        "ConfirmationURL": "http://127.0.0.1:8000/cb/confirmation/",
        "ValidationURL": "http://127.0.0.1:8000/cb/validation/",
        field: value,
    }

    response = httpx.post(
        f"{emulator_url}/mpesa/c2b/v2/registerurl", json=body, headers=bearer(raw_token(emulator_url))
    )

    assert response.status_code == 400
    assert response.json()["errorCode"] == "400.002.02"
    assert field in response.json()["errorMessage"]
    assert cache.get(f"daraja-emulator:urls:{SHORT_CODE}") is None


def test_register_needs_a_bearer_token(emulator_url):
    response = httpx.post(f"{emulator_url}/mpesa/c2b/v2/registerurl", json={})

    assert response.status_code == 404
    assert response.json()["errorCode"] == "404.001.04"


# --- Simulate -----------------------------------------------------------------------------------


def test_simulate_posts_validation_then_confirmation_with_a_realistic_payload(client, live_server):
    register_stubs(client, live_server)

    answer = client.simulate(SHORT_CODE, 500, "254712345678", "LOAN-000123")

    assert set(answer) == {"OriginatorCoversationID", "ResponseCode", "ResponseDescription", "TransID"}
    assert answer["ResponseCode"] == "0"
    assert answer["ResponseDescription"] == "Accept the service request successfully."
    assert [kind for _, kind, _ in emulator_urls.received] == ["validation", "confirmation"]
    [validation], [confirmation] = payloads("validation"), payloads("confirmation")
    assert re.fullmatch(r"SK[A-Z0-9]{8}", answer["TransID"])
    trans_time = parse_trans_time(confirmation["TransTime"])
    assert trans_time.utcoffset() == timedelta(hours=3)
    assert abs(trans_time - timezone.now()) < timedelta(minutes=1)
    assert confirmation == {
        "TransactionType": "Pay Bill",
        "TransID": answer["TransID"],
        "TransTime": confirmation["TransTime"],
        "TransAmount": "500.00",
        "BusinessShortCode": SHORT_CODE,
        "BillRefNumber": "LOAN-000123",
        "InvoiceNumber": "",
        "OrgAccountBalance": "500.00",
        "ThirdPartyTransID": "",
        "MSISDN": hashlib.sha256(b"254712345678").hexdigest(),
        "FirstName": "JOHN",
        "MiddleName": "",
        "LastName": "DOE",
    }
    assert validation == {**confirmation, "OrgAccountBalance": ""}


def test_confirmation_carries_a_running_balance_and_a_new_trans_id_each_time(client, live_server):
    register_stubs(client, live_server)

    first = client.simulate(SHORT_CODE, 500, "254712345678", "LOAN-000123")
    second = client.simulate(SHORT_CODE, "300", "254712345678", "LOAN-000123")

    assert first["TransID"] != second["TransID"]
    assert [p["OrgAccountBalance"] for p in payloads("confirmation")] == ["500.00", "800.00"]
    assert [p["TransID"] for p in payloads("confirmation")] == [first["TransID"], second["TransID"]]


@pytest.mark.parametrize(
    ("msisdn_format", "expected"),
    [
        ("masked", "2547 ***** 678"),
        ("plain", "254712345678"),
        ("hashed", hashlib.sha256(b"254712345678").hexdigest()),
    ],
)
def test_msisdn_format_on_request(client, live_server, msisdn_format, expected):
    register_stubs(client, live_server)

    client.simulate(SHORT_CODE, 100, "254712345678", "", msisdn_format=msisdn_format)

    assert [p["MSISDN"] for p in payloads("confirmation")] == [expected]


def test_names_come_from_the_body_when_given(emulator_url, client, live_server):
    register_stubs(client, live_server)
    body = {
        "ShortCode": SHORT_CODE,
        "CommandID": "CustomerPayBillOnline",
        "Amount": 100,
        "Msisdn": 254712345678,
        "BillRefNumber": "LOAN-000123",
        "FirstName": "ACHIENG",
        "LastName": "",
    }

    response = httpx.post(
        f"{emulator_url}/mpesa/c2b/v1/simulate",
        json=body,
        headers=bearer(raw_token(emulator_url)),
        timeout=20,
    )

    assert response.status_code == 200
    [confirmation] = payloads("confirmation")
    assert (confirmation["FirstName"], confirmation["MiddleName"], confirmation["LastName"]) == (
        "ACHIENG",
        "",
        "",
    )


def test_third_party_trans_id_from_validation_is_echoed_on_confirmation(client, live_server):
    register_stubs(client, live_server, behaviour="echo")

    client.simulate(SHORT_CODE, 100, "254712345678", "")

    assert payloads("confirmation")[0]["ThirdPartyTransID"] == "HVN-42"


def test_rejecting_validation_fails_the_simulation_and_skips_confirmation(client, live_server):
    register_stubs(client, live_server, behaviour="reject")

    with pytest.raises(DarajaError) as caught:
        client.simulate(SHORT_CODE, 500, "254712345678", "NOBODY")

    assert (caught.value.code, caught.value.permanent, caught.value.http_status) == ("C2B00012", True, 400)
    assert "C2B00012" in caught.value.detail
    assert len(payloads("validation")) == 1
    assert payloads("confirmation") == []


def test_cancelled_with_unreachable_validation_does_not_confirm(client, live_server):
    register_stubs(
        client, live_server, response_type="Cancelled", validation_url=closed_port_url("validation")
    )

    with pytest.raises(DarajaError) as caught:
        client.simulate(SHORT_CODE, 500, "254712345678", "LOAN-000123")

    assert caught.value.permanent is True
    assert "Cancelled" in caught.value.detail
    assert emulator_urls.received == []


def test_completed_with_unreachable_validation_confirms(client, live_server):
    register_stubs(
        client, live_server, response_type="Completed", validation_url=closed_port_url("validation")
    )

    answer = client.simulate(SHORT_CODE, 500, "254712345678", "LOAN-000123")

    assert [p["TransID"] for p in payloads("confirmation")] == [answer["TransID"]]


def test_simulate_without_registered_urls_is_an_error(client):
    with pytest.raises(DarajaError) as caught:
        client.simulate(SHORT_CODE, 500, "254712345678", "LOAN-000123")

    assert (caught.value.code, caught.value.permanent) == ("400.002.02", True)
    assert "No URLs registered" in caught.value.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [("Amount", 0), ("Amount", "12.50"), ("Msisdn", 12345), ("CommandID", "Nope"), ("MsisdnFormat", "clear")],
)
def test_simulate_refuses_bad_input(emulator_url, client, live_server, field, value):
    register_stubs(client, live_server)
    body = {
        "ShortCode": SHORT_CODE,
        "CommandID": "CustomerPayBillOnline",
        "Amount": 100,
        "Msisdn": 254712345678,
        "BillRefNumber": "",
        field: value,
    }

    response = httpx.post(
        f"{emulator_url}/mpesa/c2b/v1/simulate", json=body, headers=bearer(raw_token(emulator_url))
    )

    assert response.status_code == 400
    assert field in response.json()["errorMessage"]
    assert emulator_urls.received == []


@pytest.mark.parametrize("environment", ["sandbox", "production", None])
def test_simulate_pays_only_a_paybill_of_the_local_environment(
    client, live_server, local_paybill, environment
):
    register_stubs(client, live_server)
    if environment is None:
        local_paybill.is_active = False
    else:
        local_paybill.environment = environment
    local_paybill.save()

    with pytest.raises(DarajaError) as caught:
        client.simulate(SHORT_CODE, 500, "254712345678", "LOAN-000123")

    assert caught.value.code == "400.002.02"
    assert "not an active configuration of the local environment" in caught.value.detail
    assert emulator_urls.received == []


def test_simulate_needs_a_valid_token(emulator_url):
    response = httpx.post(f"{emulator_url}/mpesa/c2b/v1/simulate", json={}, headers=bearer("made-up"))

    assert (response.status_code, response.json()["errorCode"]) == (404, "404.001.03")


# --- Against the project's real callback views ----------------------------------------------------


def test_simulate_reaches_the_real_callback_views(emulator_url, live_server):
    pytest.importorskip("payments.views")
    from payments.models import CallbackRequest, MpesaTransaction
    from payments.services.daraja import mpesa_configure, mpesa_register_urls, mpesa_simulate

    config, _ = mpesa_configure(
        environment="local",
        consumer_key="local-key",
        consumer_secret="local-secret",
        business_short_code=SHORT_CODE,
        base_url=live_server.url,
    )
    mpesa_register_urls(config=config)

    answer = mpesa_simulate(config=config, phone="0712345678", amount=500, bill_reference="LOAN-000123")

    tx = MpesaTransaction.objects.get(config=config)
    assert tx.trans_id == answer["TransID"] and json.loads(tx.raw_body)["TransID"] == answer["TransID"]
    assert tx.raw_headers["Content-Type"] == "application/json"
    # The validation request is kept as it came too; the confirmation became the payment.
    assert list(CallbackRequest.objects.filter(config=config).values_list("kind", "outcome")) == [
        ("validation", "accepted")
    ]
