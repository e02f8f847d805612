"""DarajaClient against a fake Daraja (httpx.MockTransport) replaying recorded answers: every error path."""

import base64
import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from django.core.cache import cache

from payments.clients.daraja import (
    EMULATOR_MIN_TIMEOUT,
    DarajaClient,
    DarajaError,
    _token_ttl,
)
from payments.models import MpesaConfiguration
from tests.cache import clear_test_cache

# The client keeps its access token in the cache, which is a database table without Redis.
pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "daraja"
SANDBOX = "https://sandbox.safaricom.co.ke"
PRODUCTION = "https://api.safaricom.co.ke"
KEY, SECRET = "consumer-key-abc123", "consumer-secret-s3cr3t"
OAUTH = "/oauth/v1/generate"
REGISTER_V2, REGISTER_V1 = "/mpesa/c2b/v2/registerurl", "/mpesa/c2b/v1/registerurl"
SIMULATE = "/mpesa/c2b/v1/simulate"
CONFIRM = "https://pay.haven.example/payments/c2b/tok3n/confirmation/"
VALIDATE = "https://pay.haven.example/payments/c2b/tok3n/validation/"


def answer(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _path(request: httpx.Request) -> str:
    return request.url.path.removeprefix("/daraja-emulator")


class FakeDaraja:
    """Routes by path to queued answers ``(status, body)`` or exceptions; the last one repeats."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[str, list] = {}
        self.tokens_issued = 0

    def on(self, path: str, *answers: object) -> "FakeDaraja":
        self.routes[path] = list(answers)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = _path(request)
        if path == OAUTH and OAUTH not in self.routes:
            self.tokens_issued += 1
            return httpx.Response(
                200, json={"access_token": f"token-{self.tokens_issued}", "expires_in": "3599"}
            )
        queue = self.routes[path]
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(item) and not isinstance(item, Exception):
            item = item(request)
        if isinstance(item, Exception):
            raise item
        status, body = item
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    def calls(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if _path(request) == path]


@pytest.fixture(autouse=True)
def _empty_cache(django_db_blocker):
    clear_test_cache(django_db_blocker)
    yield
    clear_test_cache(django_db_blocker)


@pytest.fixture
def fake() -> FakeDaraja:
    return FakeDaraja()


def make_client(fake: FakeDaraja, base_url: str = SANDBOX, environment: str | None = None) -> DarajaClient:
    return DarajaClient(
        base_url, KEY, SECRET, timeout=5, transport=httpx.MockTransport(fake), environment=environment
    )


def register(client: DarajaClient, version: str = "v2", **overrides: str):
    arguments = {
        "short_code": "600984",
        "response_type": "Completed",
        "confirmation_url": CONFIRM,
        "validation_url": VALIDATE,
        "version": version,
    }
    arguments.update(overrides)
    return client.register_urls(**arguments)


# --- OAuth and the shared token -----------------------------------------------------------------


def test_token_is_fetched_once_with_basic_auth_and_reused(fake):
    fake.on(REGISTER_V2, (200, answer("api_register_success")))
    client = make_client(fake)

    register(client)
    register(client)

    oauth = fake.calls(OAUTH)
    assert len(oauth) == 1
    assert oauth[0].url.params["grant_type"] == "client_credentials"
    expected = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert oauth[0].headers["Authorization"] == expected
    assert [r.headers["Authorization"] for r in fake.calls(REGISTER_V2)] == ["Bearer token-1"] * 2


def test_token_is_shared_by_clients_through_the_cache_under_a_hashed_key(fake):
    fake.on(REGISTER_V2, (200, answer("api_register_success")))
    register(make_client(fake))
    other_process = make_client(fake)
    register(other_process)

    assert len(fake.calls(OAUTH)) == 1
    key = other_process._token_cache_key
    assert KEY not in key and cache.get(key) == "token-1"


def test_expired_token_is_fetched_again(fake):
    fake.on(REGISTER_V2, (200, answer("api_register_success")))
    client = make_client(fake)
    register(client)
    cache.delete(client._token_cache_key)  # what expiry does

    register(client)

    assert len(fake.calls(OAUTH)) == 2
    assert fake.calls(REGISTER_V2)[-1].headers["Authorization"] == "Bearer token-2"


def test_token_expires_about_five_minutes_early():
    assert _token_ttl(3599) == 3299
    assert _token_ttl(400) == 200


@pytest.mark.parametrize(
    "refusal",
    [(404, answer("api_error_invalid_token")), (401, None)],
    ids=["404.001.03", "http-401"],
)
def test_invalid_token_is_refreshed_once_and_the_call_retried(fake, refusal):
    fake.on(REGISTER_V2, refusal, (200, answer("api_register_success")))
    client = make_client(fake)

    result = register(client)

    assert result.answer == answer("api_register_success")
    assert len(fake.calls(OAUTH)) == 2
    assert [r.headers["Authorization"] for r in fake.calls(REGISTER_V2)] == [
        "Bearer token-1",
        "Bearer token-2",
    ]
    assert cache.get(client._token_cache_key) == "token-2"


def test_invalid_token_twice_gives_up_after_one_retry(fake):
    fake.on(REGISTER_V2, (404, answer("api_error_invalid_token")))

    with pytest.raises(DarajaError) as caught:
        register(make_client(fake))

    assert caught.value.permanent is False
    assert caught.value.code == "404.001.03"
    assert len(fake.calls(OAUTH)) == 2
    assert len(fake.calls(REGISTER_V2)) == 2


def test_invalid_token_already_replaced_by_another_process_is_not_fetched_again(fake):
    client = make_client(fake)
    cache.set(client._token_cache_key, "stale-token")

    def refuse_and_let_another_process_refresh(request):
        cache.set(client._token_cache_key, "fresh-from-elsewhere")
        return (404, answer("api_error_invalid_token"))

    fake.on(REGISTER_V2, refuse_and_let_another_process_refresh, (200, answer("api_register_success")))

    register(client)

    assert fake.calls(OAUTH) == []
    assert fake.calls(REGISTER_V2)[-1].headers["Authorization"] == "Bearer fresh-from-elsewhere"


def test_refused_credentials_are_permanent_and_nothing_is_cached(fake):
    fake.on(OAUTH, (400, answer("api_error_invalid_credentials")))
    client = make_client(fake)

    with pytest.raises(DarajaError) as caught:
        client.access_token()

    assert (caught.value.permanent, caught.value.code, caught.value.http_status) == (True, "400.008.01", 400)
    assert cache.get(client._token_cache_key) is None
    assert SECRET not in caught.value.detail


def test_missing_credentials_are_refused_without_a_request(fake):
    client = DarajaClient(SANDBOX, "", "", timeout=5, transport=httpx.MockTransport(fake))

    with pytest.raises(DarajaError) as caught:
        client.access_token()

    assert caught.value.permanent is True
    assert fake.requests == []


def test_forced_token_replaces_the_cached_one(fake):
    client = make_client(fake)
    assert client.access_token() == "token-1"
    assert client.access_token() == "token-1"
    assert client.access_token(force=True) == "token-2"
    assert cache.get(client._token_cache_key) == "token-2"


# --- Register URL -------------------------------------------------------------------------------


def test_register_sends_daraja_body_and_returns_the_version(fake):
    fake.on(REGISTER_V2, (200, answer("api_register_success")))

    result = register(make_client(fake), response_type="Cancelled")

    assert (result.api_version, result.answer["ResponseCode"]) == ("v2", "0")
    assert json.loads(fake.calls(REGISTER_V2)[0].content) == {
        "ShortCode": "600984",
        "ResponseType": "Cancelled",
        "ConfirmationURL": CONFIRM,
        "ValidationURL": VALIDATE,
    }


def test_v2_product_mismatch_falls_back_to_v1_once(fake):
    fake.on(REGISTER_V2, (401, answer("api_error_product_mismatch")))
    fake.on(REGISTER_V1, (200, answer("api_register_success")))

    result = register(make_client(fake))

    assert result.api_version == "v1"
    assert (len(fake.calls(REGISTER_V2)), len(fake.calls(REGISTER_V1))) == (1, 1)
    # A product mismatch is not a token problem: no second token.
    assert len(fake.calls(OAUTH)) == 1


def test_v1_product_mismatch_is_permanent_without_fallback(fake):
    fake.on(REGISTER_V1, (401, answer("api_error_product_mismatch")))

    with pytest.raises(DarajaError) as caught:
        register(make_client(fake), version="v1")

    assert (caught.value.permanent, caught.value.code) == (True, "401.003.01")
    assert len(fake.calls(REGISTER_V1)) == 1 and fake.calls(REGISTER_V2) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://pay.haven.example/mpesa/confirmation/",
        "https://pay.haven.example/M-PESA/confirmation/",
        "https://Safaricom-callbacks.example/confirmation/",
        "https://pay.haven.example/cb.exe",
        "https://pay.haven.example/EXEC/confirmation/",
        "https://pay.haven.example/cmd/confirmation/",
        "https://pay.haven.example/MySQL/confirmation/",
        "https://pay.haven.example/confirmation/?Query=1",
    ],
)
def test_forbidden_words_are_refused_before_any_request(fake, url):
    with pytest.raises(DarajaError) as caught:
        register(make_client(fake), confirmation_url=url)

    assert caught.value.permanent is True
    assert "ConfirmationURL" in caught.value.detail
    assert fake.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://pay.haven.example/payments/c2b/tok3n/validation/",
        "https://abc123.ngrok-free.app/payments/c2b/tok3n/validation/",
        "https://127.0.0.1/payments/c2b/tok3n/validation/",
    ],
    ids=["http", "ngrok", "loopback"],
)
def test_production_refuses_http_tunnels_and_private_hosts_before_any_request(fake, url):
    with pytest.raises(DarajaError) as caught:
        register(make_client(fake, PRODUCTION), validation_url=url)

    assert caught.value.permanent is True
    assert "tok3n" not in caught.value.detail  # the callback token stays out of messages
    assert fake.requests == []


def test_http_callbacks_are_allowed_outside_production(fake):
    fake.on(REGISTER_V2, (200, answer("api_register_success")))

    register(make_client(fake), validation_url="http://127.0.0.1:8000/payments/c2b/tok3n/validation/")

    assert len(fake.calls(REGISTER_V2)) == 1


@pytest.mark.parametrize("response_type", ["completed", "CANCELLED", "Accept", ""])
def test_response_type_must_be_spelled_exactly(fake, response_type):
    with pytest.raises(DarajaError) as caught:
        register(make_client(fake), response_type=response_type)

    assert caught.value.permanent is True
    assert fake.requests == []


def test_already_registered_is_permanent_and_points_to_the_portal(fake):
    fake.on(REGISTER_V2, (500, answer("api_error_already_registered")))

    with pytest.raises(DarajaError) as caught:
        register(make_client(fake, PRODUCTION))

    error = caught.value
    assert (error.permanent, error.code, error.http_status) == (True, "500.003.1001", 500)
    assert "portal" in error.detail
    assert len(fake.calls(REGISTER_V2)) == 1


@pytest.mark.parametrize(
    ("status", "body", "permanent", "code"),
    [
        (500, answer("api_error_spike_arrest"), False, "500.003.02"),
        (429, None, False, None),
        (503, None, False, None),
        (502, {"errorCode": "500.001.1001", "errorMessage": "Service unavailable"}, False, "500.001.1001"),
        (400, answer("api_error_bad_request"), True, "400.002.02"),
        (403, None, True, None),
    ],
    ids=["spike-arrest", "429", "503", "5xx-with-code", "400-validation", "403"],
)
def test_error_answers_are_classified(fake, status, body, permanent, code):
    fake.on(REGISTER_V2, (status, body))

    with pytest.raises(DarajaError) as caught:
        register(make_client(fake))

    assert (caught.value.permanent, caught.value.code, caught.value.http_status) == (permanent, code, status)


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), httpx.ConnectError("refused")],
    ids=["read-timeout", "connect-timeout", "connect-error"],
)
@pytest.mark.parametrize("path", [OAUTH, REGISTER_V2])
def test_timeouts_and_connection_errors_are_temporary(fake, failure, path):
    fake.on(path, failure)
    if path != OAUTH:
        cache.set(make_client(fake)._token_cache_key, "token-0")

    with pytest.raises(DarajaError) as caught:
        register(make_client(fake))

    assert caught.value.permanent is False
    assert caught.value.unreachable is True
    assert caught.value.http_status is None


def test_unreadable_success_answer_is_temporary(fake):
    fake.on(REGISTER_V2, (200, None))

    with pytest.raises(DarajaError) as caught:
        register(make_client(fake))

    assert caught.value.permanent is False


def test_local_connection_refused_says_to_start_the_server(fake):
    fake.on(OAUTH, httpx.ConnectError("refused"))

    with pytest.raises(DarajaError) as caught:
        make_client(fake, "http://127.0.0.1:8000/daraja-emulator", environment="local").access_token()

    assert "runserver" in caught.value.detail


# --- Simulate -----------------------------------------------------------------------------------


def test_simulate_sends_daraja_body_without_emulator_fields_to_the_sandbox(fake):
    fake.on(SIMULATE, (200, answer("api_simulate_success")))

    result = make_client(fake).simulate("600984", 500, "254712345678", "LOAN-000123", msisdn_format="masked")

    assert result == answer("api_simulate_success")
    assert json.loads(fake.calls(SIMULATE)[0].content) == {
        "ShortCode": 600984,
        "CommandID": "CustomerPayBillOnline",
        "Amount": 500,
        "Msisdn": 254712345678,
        "BillRefNumber": "LOAN-000123",
    }


def test_simulate_tells_the_emulator_the_msisdn_format(fake):
    fake.on(SIMULATE, (200, {**answer("api_simulate_success"), "TransID": "SKAB12CD34"}))
    client = make_client(fake, "http://127.0.0.1:8000/daraja-emulator", environment="local")

    result = client.simulate("600984", "500.00", "254712345678", "", msisdn_format="plain")

    assert result["TransID"] == "SKAB12CD34"
    assert json.loads(fake.calls(SIMULATE)[0].content)["MsisdnFormat"] == "plain"


@pytest.mark.parametrize(
    ("base_url", "amount", "msisdn"),
    [
        (PRODUCTION, 500, "254712345678"),
        (SANDBOX, "500.50", "254712345678"),
        (SANDBOX, 0, "254712345678"),
        (SANDBOX, 500, "0712345678"),
    ],
    ids=["production", "cents", "zero", "not-254"],
)
def test_simulate_refusals_make_no_request(fake, base_url, amount, msisdn):
    with pytest.raises(DarajaError) as caught:
        make_client(fake, base_url).simulate("600984", amount, msisdn, "LOAN-000123")

    assert caught.value.permanent is True
    assert fake.requests == []


def test_logs_carry_no_secret_token_or_phone_number(fake, caplog):
    fake.on(SIMULATE, (404, answer("api_error_invalid_token")), (200, answer("api_simulate_success")))
    caplog.set_level(logging.DEBUG)

    make_client(fake).simulate("600984", 500, "254712345678", "LOAN-000123")

    assert "daraja simulate 600984" in caplog.text
    for secret in (SECRET, KEY, "token-1", "token-2", "254712345678"):
        assert secret not in caplog.text
    assert "2547*****678" in caplog.text


# --- Recovery APIs ------------------------------------------------------------------------------

STATUS = "/mpesa/transactionstatus/v1/query"
PULL_REGISTER, PULL_QUERY = "/pulltransactions/v1/register", "/pulltransactions/v1/query"


def status_query(client: DarajaClient, **overrides: str) -> dict:
    arguments = {
        "transaction_id": "SAB7LQ2X9K",
        "short_code": "600984",
        "initiator": "haven-api",
        "security_credential": "ENCRYPTED==",
        "result_url": "https://pay.haven.example/payments/status/result/",
        "queue_timeout_url": "https://pay.haven.example/payments/status/timeout/",
    }
    arguments.update(overrides)
    return client.transaction_status(**arguments)


def test_transaction_status_builds_the_request_and_returns_the_acknowledgement(fake):
    fake.on(STATUS, (200, answer("api_transaction_status_accepted")))

    result = status_query(make_client(fake))

    assert result["ConversationID"] == "AG_20210709_1234409f86436c583e3f"
    request = fake.calls(STATUS)[0]
    assert request.headers["Authorization"] == "Bearer token-1"
    assert json.loads(request.content) == {
        "Initiator": "haven-api",
        "SecurityCredential": "ENCRYPTED==",
        "CommandID": "TransactionStatusQuery",
        "TransactionID": "SAB7LQ2X9K",
        "PartyA": "600984",
        "IdentifierType": "4",
        "ResultURL": "https://pay.haven.example/payments/status/result/",
        "QueueTimeOutURL": "https://pay.haven.example/payments/status/timeout/",
        "Remarks": "Payment status check",
        "Occasion": "",
    }


def test_transaction_status_errors(fake):
    fake.on(STATUS, (400, {"errorCode": "400.002.02", "errorMessage": "Bad Request - Invalid Initiator"}))
    with pytest.raises(DarajaError) as caught:
        status_query(make_client(fake))
    assert (caught.value.permanent, caught.value.code) == (True, "400.002.02")

    fake.requests.clear()
    with pytest.raises(DarajaError):
        status_query(make_client(fake), result_url="https://pay.haven.example/query/result/")
    with pytest.raises(DarajaError):
        status_query(make_client(fake), transaction_id="not a receipt!")
    assert fake.requests == []


def test_pull_register_builds_the_request(fake):
    fake.on(PULL_REGISTER, (200, answer("api_pull_register_success")))

    result = make_client(fake).pull_transactions_register(
        short_code="600984", nominated_number="254712345678", callback_url="https://pay.haven.example/pull/"
    )

    assert result["ResponseStatus"] == "1000"
    assert json.loads(fake.calls(PULL_REGISTER)[0].content) == {
        "ShortCode": "600984",
        "RequestType": "Pull",
        "NominatedNumber": "254712345678",
        "CallBackURL": "https://pay.haven.example/pull/",
    }


def test_pull_register_refusal_is_permanent(fake):
    fake.on(
        PULL_REGISTER, (200, {"ResponseRefID": "1-2-3", "ResponseStatus": "1002", "ResponseDescription": "x"})
    )

    with pytest.raises(DarajaError) as caught:
        make_client(fake).pull_transactions_register(
            short_code="600984",
            nominated_number="254712345678",
            callback_url="https://pay.haven.example/pull/",
        )

    assert (caught.value.permanent, caught.value.code) == (True, "1002")


def test_pull_query_sends_nairobi_times_and_flattens_rows(fake):
    fake.on(PULL_QUERY, (200, answer("api_pull_query_page")))

    page = make_client(fake).pull_transactions_query(
        short_code="600984",
        start=datetime(2024, 3, 5, 5, 0, tzinfo=UTC),
        end=datetime(2024, 3, 5, 7, 0, tzinfo=UTC),
        offset=100,
    )

    assert json.loads(fake.calls(PULL_QUERY)[0].content) == {
        "ShortCode": "600984",
        "StartDate": "2024-03-05 08:00:00",
        "EndDate": "2024-03-05 10:00:00",
        "OffSetValue": "100",
    }
    assert page.response_code == "1000" and not page.nothing_returned
    assert [row["transactionId"] for row in page.transactions] == ["SAB7LQ2X9K", "SAB7LQ2Y1M"]


def test_pull_query_1001_is_not_an_error_but_stays_visible(fake):
    fake.on(PULL_QUERY, (200, answer("api_pull_query_none")))

    page = make_client(fake).pull_transactions_query(
        short_code="600984",
        start=datetime(2024, 3, 5, 5, tzinfo=UTC),
        end=datetime(2024, 3, 5, 7, tzinfo=UTC),
    )

    assert (page.response_code, page.nothing_returned, page.transactions) == ("1001", True, [])


def test_pull_query_refuses_naive_times_without_a_request(fake):
    with pytest.raises(DarajaError):
        make_client(fake).pull_transactions_query(
            short_code="600984",
            start=datetime(2024, 3, 5, 5),  # noqa: DTZ001 - the naive time under test
            end=datetime(2024, 3, 5, 7, tzinfo=UTC),
        )
    assert fake.requests == []


# --- for_config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "expected_url"),
    [
        ("local", "http://emulator.test:9000/daraja-emulator"),
        ("sandbox", "https://sandbox.example.test"),
        ("production", "https://api.example.test"),
    ],
)
def test_for_config_picks_the_base_url_by_environment(settings, environment, expected_url):
    settings.MPESA_EMULATOR_URL = "http://emulator.test:9000/daraja-emulator/"
    settings.MPESA_SANDBOX_URL = "https://sandbox.example.test"
    settings.MPESA_PRODUCTION_URL = "https://api.example.test"
    settings.MPESA_HTTP_TIMEOUT = 7
    config = MpesaConfiguration(
        environment=environment, consumer_key=KEY, consumer_secret=SECRET, business_short_code="600984"
    )

    client = DarajaClient.for_config(config)

    assert (client.base_url, client.environment) == (expected_url, environment)
    assert client.timeout == (EMULATOR_MIN_TIMEOUT if environment == "local" else 7)
    assert KEY not in repr(client) and SECRET not in repr(client)


@pytest.mark.django_db(transaction=True)  # the "other process" is a thread: it must see committed rows
def test_waits_for_the_token_another_process_is_fetching_instead_of_fetching_its_own(fake):
    client = make_client(fake)
    cache.set(client._token_cache_key + ":lock", "1", timeout=30)
    other_process = threading.Timer(0.3, lambda: cache.set(client._token_cache_key, "their-token"))
    other_process.start()

    token = client.access_token()

    other_process.join()
    assert token == "their-token"
    assert fake.requests == []


@pytest.mark.django_db
def test_local_client_finds_the_emulator_at_the_configurations_own_server(settings):
    from payments.models import MpesaConfiguration

    settings.MPESA_EMULATOR_URL = ""
    config = MpesaConfiguration.objects.create(
        business_short_code="600984", base_url="http://127.0.0.1:8123/"
    )
    assert DarajaClient.for_config(config).base_url == "http://127.0.0.1:8123/daraja-emulator"
    settings.MPESA_EMULATOR_URL = "http://127.0.0.1:9000/daraja-emulator"
    assert DarajaClient.for_config(config).base_url == "http://127.0.0.1:9000/daraja-emulator"
