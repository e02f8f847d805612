import json
from decimal import Decimal
from pathlib import Path

import pytest

from payments.models import MpesaConfiguration
from tests.cache import clear_test_cache
from tests.factories import BorrowerFactory, LoanFactory, MpesaConfigurationFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "daraja"


def daraja_payload(name: str, **overrides) -> dict:
    """A recorded Daraja payload with some fields replaced (amounts kept as the provider sends them)."""
    payload = json.loads((FIXTURES / name).read_text(), parse_float=Decimal)
    payload.update(overrides)
    return payload


def status_result(name: str, query, **parameters) -> dict:
    """A recorded Transaction Status result (``ResultParameters`` of Daraja's real shape) as the
    answer to ``query``: its conversation id, its id as Occasion, its receipt as ``ReceiptNo``
    unless given, and the other result parameters given replaced."""
    body = json.loads((FIXTURES / name).read_text())
    result = body["Result"]
    result["ConversationID"] = query.conversation_id
    result["ReferenceData"] = {"ReferenceItem": {"Key": "Occasion", "Value": f"haven-{query.pk}"}}
    replaced = {"ReceiptNo": query.trans_id, **parameters}
    for item in result["ResultParameters"]["ResultParameter"]:
        if item["Key"] in replaced:
            item["Value"] = replaced[item["Key"]]
    return body


@pytest.fixture(autouse=True)
def _fresh_config_cache():
    from payments.services.callbacks import config_cache_clear

    config_cache_clear()
    yield
    config_cache_clear()


@pytest.fixture
def mpesa_config(db) -> MpesaConfiguration:
    return MpesaConfigurationFactory()


@pytest.fixture
def post_callback(client, mpesa_config, django_capture_on_commit_callbacks):
    """POST a payload (dict, or raw bytes) to the validation or confirmation URL; what the request
    queued on commit (processing, notifications) runs as it would after a real commit."""

    def post(kind: str, payload, *, token: str | None = None, **extra):
        body = payload if isinstance(payload, bytes) else json.dumps(payload, default=str).encode()
        url = f"/payments/c2b/{token or mpesa_config.callback_token}/{kind}/"
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data=body, content_type="application/json", **extra)

    return post


@pytest.fixture
def emulator_url(live_server, settings, django_db_blocker) -> str:
    """The Daraja emulator on pytest-django's live server (use with ``tests.payments.emulator_urls``)."""
    from tests.payments import emulator_urls

    settings.MPESA_EMULATOR_ENABLED = True
    settings.MPESA_EMULATOR_URL = f"{live_server.url}/daraja-emulator"
    clear_test_cache(django_db_blocker)
    emulator_urls.received.clear()
    yield settings.MPESA_EMULATOR_URL
    clear_test_cache(django_db_blocker)
    emulator_urls.received.clear()


@pytest.fixture
def emulated_paybill(emulator_url, live_server) -> MpesaConfiguration:
    """A local configuration whose callbacks reach this project's real views on the live server, its
    URLs registered with the emulator."""
    from payments.services.daraja import mpesa_configure, mpesa_register_urls

    config, _ = mpesa_configure(
        environment="local",
        consumer_key="local-key",
        consumer_secret="local-secret",
        business_short_code="600984",
        base_url=live_server.url,
    )
    mpesa_register_urls(config=config)
    return config


@pytest.fixture
def loan(db):
    """LOAN-000123 (KES 5,000) of a borrower whose phone pays in the recovery tests (0722000000)."""
    borrower = BorrowerFactory(phones=["+254722000000"], full_name="Nicholas Kiprono")
    return LoanFactory(
        loan_number="LOAN-000123",
        borrower=borrower,
        principal_disbursed=Decimal("5000"),
        principal=Decimal("5000"),
    )
