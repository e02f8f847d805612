import json
from decimal import Decimal
from pathlib import Path

import pytest

from payments.models import MpesaConfiguration
from tests.factories import MpesaConfigurationFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "daraja"


def daraja_payload(name: str, **overrides) -> dict:
    """A recorded Daraja payload with some fields replaced (amounts kept as the provider sends them)."""
    payload = json.loads((FIXTURES / name).read_text(), parse_float=Decimal)
    payload.update(overrides)
    return payload


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
