"""``setup_mpesa`` and ``simulate_c2b``, and the services under them (payments.services.daraja)."""

import json
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection

from core.crypto import decrypt
from core.exceptions import InvalidAmount, InvalidInput, InvalidPhoneNumber, InvalidState
from core.models import AuditEvent
from payments.clients.daraja import DarajaClient, DarajaError
from payments.models import MpesaConfiguration
from payments.services.daraja import (
    mpesa_configure,
    mpesa_register_urls,
    mpesa_simulate,
    mpesa_test_credentials,
)
from tests.cache import clear_test_cache
from tests.payments import emulator_urls
from tests.payments.emulator_urls import closed_port_url, payloads, stub_url

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "daraja"
SECRET = "sup3r-s3cret-consumer-value"
SHORT_CODE = "600984"


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def setup_args(environment="sandbox", base_url="https://pay.haven.example", *extra: str) -> list[str]:
    return [
        "--environment", environment,
        "--consumer-key", "the-consumer-key",
        "--consumer-secret", SECRET,
        "--business-short-code", SHORT_CODE,
        "--base-url", base_url,
        *extra,
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def _empty_cache(django_db_blocker):
    clear_test_cache(django_db_blocker)
    emulator_urls.received.clear()
    yield
    clear_test_cache(django_db_blocker)
    emulator_urls.received.clear()


@pytest.fixture
def emulator(live_server, settings) -> str:
    settings.MPESA_EMULATOR_ENABLED = True
    settings.MPESA_EMULATOR_URL = f"{live_server.url}/daraja-emulator"
    settings.ROOT_URLCONF = "tests.payments.emulator_urls"
    return settings.MPESA_EMULATOR_URL


@pytest.fixture
def nothing_listening(settings) -> None:
    settings.MPESA_EMULATOR_URL = closed_port_url("x").removesuffix("/nobody/x/") + "/daraja-emulator"


# --- setup_mpesa --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_setup_mpesa_prints_both_urls_and_never_the_secret():
    output = run("setup_mpesa", *setup_args())

    config = MpesaConfiguration.objects.get(business_short_code=SHORT_CODE)
    assert config.validation_url in output and config.confirmation_url in output
    assert config.validation_url.startswith(
        f"https://pay.haven.example/payments/c2b/{config.callback_token}/"
    )
    assert SECRET not in output
    assert (config.environment, config.is_active, config.consumer_secret) == ("sandbox", True, SECRET)


@pytest.mark.django_db
def test_setup_mpesa_stores_ciphertext_not_the_secret():
    run("setup_mpesa", *setup_args())

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT consumer_key, consumer_secret FROM payments_mpesaconfiguration WHERE business_short_code = %s",
            [SHORT_CODE],
        )
        raw_key, raw_secret = cursor.fetchone()
    assert SECRET not in raw_secret and "the-consumer-key" not in raw_key
    assert decrypt(raw_secret) == SECRET


@pytest.mark.django_db
def test_setup_mpesa_updates_the_same_short_code_and_keeps_its_token():
    run("setup_mpesa", *setup_args())
    token = MpesaConfiguration.objects.get().callback_token

    output = run(
        "setup_mpesa", *setup_args("sandbox", "https://new.haven.example", "--response-type", "Cancelled")
    )

    config = MpesaConfiguration.objects.get()
    assert output.startswith("Updated")
    assert (config.callback_token, config.base_url, config.response_type) == (
        token,
        "https://new.haven.example",
        "Cancelled",
    )
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "mpesa_configuration_created",
        "mpesa_configuration_updated",
    ]
    assert SECRET not in json.dumps(list(AuditEvent.objects.values_list("data", flat=True)))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("environment", "base_url", "message"),
    [
        ("production", "http://pay.haven.example", "HTTPS"),
        ("sandbox", "https://mpesa.haven.example", "mpesa"),
        ("sandbox", "not a url", "absolute"),
    ],
)
def test_setup_mpesa_refuses_a_base_url_daraja_would_refuse(environment, base_url, message):
    with pytest.raises(CommandError, match=message):
        run("setup_mpesa", *setup_args(environment, base_url))

    assert not MpesaConfiguration.objects.exists()


@pytest.mark.django_db
def test_setup_mpesa_needs_credentials(monkeypatch):
    monkeypatch.delenv("MPESA_CONSUMER_SECRET", raising=False)
    args = [a for a in setup_args() if a not in ("--consumer-secret", SECRET)]

    with pytest.raises(CommandError, match="consumer-secret"):
        run("setup_mpesa", *args)


def test_setup_mpesa_register_against_the_emulator(emulator, live_server):
    output = run("setup_mpesa", *setup_args("local", live_server.url, "--register"))

    config = MpesaConfiguration.objects.get()
    assert "Daraja registered the URLs (API v2)" in output
    assert '"ResponseCode": "0"' in output and SECRET not in output
    assert config.last_registration_at is not None
    assert config.last_registration_result["ok"] is True
    assert config.last_registration_result["answer"]["ResponseDescription"] == "Success"
    registered = cache.get(f"daraja-emulator:urls:{SHORT_CODE}")
    assert (registered["validation_url"], registered["confirmation_url"]) == (
        config.validation_url,
        config.confirmation_url,
    )


@pytest.mark.django_db
def test_setup_mpesa_register_says_when_the_server_is_not_running(nothing_listening):
    with pytest.raises(CommandError, match="runserver"):
        run("setup_mpesa", *setup_args("local", "http://127.0.0.1:8000", "--register"))

    config = MpesaConfiguration.objects.get()
    assert config.last_registration_result["ok"] is False
    assert config.last_registration_result["permanent"] is False


# --- simulate_c2b -------------------------------------------------------------------------------


def test_simulate_c2b_pays_through_the_emulator_and_prints_the_trans_id(emulator, live_server):
    config, _ = mpesa_configure(
        environment="local",
        consumer_key="k",
        consumer_secret="s",
        business_short_code=SHORT_CODE,
        base_url=live_server.url,
    )
    with DarajaClient.for_config(config) as client:
        client.register_urls(
            SHORT_CODE,
            "Completed",
            stub_url(live_server.url, "accept", "confirmation"),
            stub_url(live_server.url, "accept", "validation"),
        )

    output = run(
        "simulate_c2b", "--phone", "0712345678", "--amount", "500", "--reference", "LOAN-000123",
        "--msisdn-format", "plain",
    )  # fmt: skip

    [confirmation] = payloads("confirmation")
    assert f"TransID: {confirmation['TransID']}" in output
    assert (confirmation["TransAmount"], confirmation["MSISDN"], confirmation["BillRefNumber"]) == (
        "500.00",
        "254712345678",
        "LOAN-000123",
    )
    assert "2547*****678 paid KES 500.00 to" in output
    assert "0712345678" not in output and "254712345678" not in output


@pytest.mark.django_db
def test_simulate_c2b_is_refused_in_production():
    run("setup_mpesa", *setup_args("production"))

    with pytest.raises(CommandError, match="production"):
        run("simulate_c2b", "--phone", "0712345678", "--amount", "500")


@pytest.mark.django_db
def test_simulate_c2b_says_when_the_server_is_not_running(nothing_listening):
    run("setup_mpesa", *setup_args("local", "http://127.0.0.1:8000"))

    with pytest.raises(CommandError, match="runserver"):
        run("simulate_c2b", "--phone", "0712345678", "--amount", "500")


@pytest.mark.django_db
def test_simulate_c2b_without_configuration():
    with pytest.raises(CommandError, match="setup_mpesa"):
        run("simulate_c2b", "--phone", "0712345678", "--amount", "500")


# --- Services -----------------------------------------------------------------------------------


def fake_client(config, handler) -> DarajaClient:
    return DarajaClient.for_config(config, transport=httpx.MockTransport(handler))


def daraja_answer(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture
def sandbox_config(db) -> MpesaConfiguration:
    config, _ = mpesa_configure(
        environment="sandbox",
        consumer_key="k",
        consumer_secret="s",
        business_short_code=SHORT_CODE,
        base_url="https://pay.haven.example",
    )
    return config


def test_register_failure_is_saved_with_its_code(sandbox_config):
    def handler(request):
        if request.url.path.startswith("/oauth"):
            return httpx.Response(200, json=daraja_answer("api_oauth_token"))
        return httpx.Response(500, json=daraja_answer("api_error_already_registered"))

    with pytest.raises(DarajaError):
        mpesa_register_urls(config=sandbox_config, client=fake_client(sandbox_config, handler))

    sandbox_config.refresh_from_db()
    result = sandbox_config.last_registration_result
    assert (result["ok"], result["code"], result["http_status"], result["permanent"]) == (
        False,
        "500.003.1001",
        500,
        True,
    )
    assert "portal" in result["error"]
    assert sandbox_config.last_registration_at is not None


def test_register_v1_fallback_is_remembered(sandbox_config):
    def handler(request):
        if request.url.path.startswith("/oauth"):
            return httpx.Response(200, json=daraja_answer("api_oauth_token"))
        if "/v2/" in request.url.path:
            return httpx.Response(401, json=daraja_answer("api_error_product_mismatch"))
        return httpx.Response(200, json=daraja_answer("api_register_success"))

    result = mpesa_register_urls(config=sandbox_config, client=fake_client(sandbox_config, handler))

    sandbox_config.refresh_from_db()
    assert (result["ok"], result["api_version"], sandbox_config.api_version) == (True, "v1", "v1")
    assert sandbox_config.last_registration_result == result


def test_test_credentials_forces_a_fresh_token(sandbox_config):
    issued = []

    def handler(request):
        issued.append(request)
        return httpx.Response(200, json={"access_token": f"token-{len(issued)}", "expires_in": "3599"})

    client = fake_client(sandbox_config, handler)
    client.access_token()

    text = mpesa_test_credentials(config=sandbox_config, client=client)

    assert "accepted" in text and SHORT_CODE in text
    assert len(issued) == 2
    assert cache.get(client._token_cache_key) == "token-2"


def test_simulate_service_refusals(sandbox_config):
    def handler(request):
        raise AssertionError("no request expected")

    client = fake_client(sandbox_config, handler)
    common = {"config": sandbox_config, "bill_reference": "LOAN-000123", "client": client}
    with pytest.raises(InvalidPhoneNumber):
        mpesa_simulate(phone="12345", amount=500, **common)
    with pytest.raises(InvalidAmount):
        mpesa_simulate(phone="0712345678", amount="10.50", **common)
    with pytest.raises(InvalidInput):
        mpesa_simulate(phone="0712345678", amount=500, msisdn_format="clear", **common)
    sandbox_config.environment = MpesaConfiguration.Environment.PRODUCTION
    with pytest.raises(InvalidState):
        mpesa_simulate(phone="0712345678", amount=500, **common)


def test_simulate_service_sends_the_normalised_number(sandbox_config):
    bodies = []

    def handler(request):
        if request.url.path.startswith("/oauth"):
            return httpx.Response(200, json=daraja_answer("api_oauth_token"))
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=daraja_answer("api_simulate_success"))

    mpesa_simulate(
        config=sandbox_config,
        phone="+254 712 345 678",
        amount="500",
        bill_reference="LOAN-000123",
        client=fake_client(sandbox_config, handler),
    )

    assert (bodies[0]["Msisdn"], bodies[0]["Amount"], bodies[0]["ShortCode"]) == (254712345678, 500, 600984)


@pytest.mark.django_db
def test_configure_replaces_a_callback_token_daraja_would_refuse(monkeypatch):
    drawn = iter(["abcSQLdef", "aEXEb", "clean-token-123"])
    monkeypatch.setattr("payments.models.secrets.token_urlsafe", lambda n: next(drawn))
    config = MpesaConfiguration.objects.create(
        business_short_code=SHORT_CODE, base_url="https://pay.haven.example", callback_token="has-cmd-in-it"
    )

    updated, created = mpesa_configure(
        environment="sandbox",
        consumer_key="k",
        consumer_secret="s",
        business_short_code=SHORT_CODE,
        base_url="https://pay.haven.example",
    )

    assert (updated.pk, created, updated.callback_token) == (config.pk, False, "clean-token-123")


def test_simulate_c2b_end_to_end_registers_the_local_urls_and_posts_the_payment(emulator, live_server):
    """The demo path over real HTTP: the client pays through the emulator, which calls this system's
    own callback views; the payment is stored, matched and posted. Nothing was registered before:
    the local environment registers its URLs on the way."""
    from decimal import Decimal

    from core.models import Loan
    from payments.models import MpesaTransaction
    from tests.factories import BorrowerFactory, LoanFactory

    borrower = BorrowerFactory(phones=["+254712345678"])
    LoanFactory(
        loan_number="LOAN-000777",
        borrower=borrower,
        principal_disbursed=Decimal("2000"),
        principal=Decimal("2000"),
    )
    config, _ = mpesa_configure(
        environment="local",
        consumer_key="k",
        consumer_secret="s",
        business_short_code=SHORT_CODE,
        base_url=live_server.url,
    )
    assert config.last_registration_at is None

    output = run("simulate_c2b", "--phone", "0712345678", "--amount", "750", "--reference", "loan 777")

    tx = MpesaTransaction.objects.get()
    assert f"TransID: {tx.trans_id}" in output
    assert (tx.status, tx.match_strategy, tx.msisdn_kind, tx.amount) == (
        "processed",
        "bill_reference",
        "hashed",
        Decimal("750.00"),
    )
    assert Loan.objects.get(loan_number="LOAN-000777").outstanding == Decimal("1250.00")
    config.refresh_from_db()
    assert config.last_registration_result["ok"] is True
