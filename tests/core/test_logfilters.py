import logging

import pytest

from core.logfilters import MaskingFormatter, mask_phone_numbers


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("paid by +254712345678", "paid by 2547*****678"),
        ("alt 0110123456", "alt 2541*****456"),
        ("hashed 254722000000 plain", "hashed 2547*****000 plain"),
        ("GET /api/v1/borrowers?phone=%2B254712345678 200", "GET /api/v1/borrowers?phone=2547*****678 200"),
        ("typed +254 712 345 678", "typed 2547*****678"),
        ("typed 0712-345-678", "typed 2547*****678"),
        ("bare 712345678.", "bare 2547*****678."),
    ],
)
def test_masks_every_form_of_kenyan_number(text, masked):
    assert mask_phone_numbers(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "8556a495c390f3ba95d2bdf6d06436f2fd09f516531f0a7cd9591c60812fa46d",
        "order 107123456789012",
        "ref LOAN-000123 amount 1500.00 code RKL51ZDR4F at 1795672248",
    ],
)
def test_leaves_digests_codes_amounts_and_timestamps_alone(text):
    assert mask_phone_numbers(text) == text


def test_formatter_masks_arguments_and_tracebacks():
    formatter = MaskingFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("Key (number)=(+254712345678) already exists")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "SMS to %s failed", ("0712345678",), None)
        import sys

        record.exc_info = sys.exc_info()
    output = formatter.format(record)
    assert output.startswith("ERROR SMS to 2547*****678 failed")
    assert "Key (number)=(2547*****678) already exists" in output
    assert "712345678" not in output.replace("2547*****678", "")


def test_callback_tokens_never_reach_a_log_line():
    from core.logfilters import redact

    line = "WARNING django.request Bad Request: /payments/c2b/Khz0vZId-AbC_123/confirmation/ from 0712345678"
    assert (
        redact(line)
        == "WARNING django.request Bad Request: /payments/c2b/<token>/confirmation/ from 2547*****678"
    )


def access_log_atoms(method: str, path: str, query: str, headers: dict[str, str] | None = None) -> dict:
    """The atoms of gunicorn's access log line for one request, through the project's logger."""
    import datetime
    from types import SimpleNamespace

    from gunicorn.config import Config

    from config.gunicorn_logging import RedactingLogger

    headers = headers or {}
    uri = f"{path}?{query}"
    request = SimpleNamespace(
        method=method, path=path, query=query, uri=uri, version=(1, 1), headers=list(headers.items())
    )
    response = SimpleNamespace(status="200 OK", sent=42, headers=[], response_length=42)
    environ = {
        "REQUEST_METHOD": method,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "RAW_URI": uri,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()},
    }
    return RedactingLogger(Config()).atoms(response, request, environ, datetime.timedelta(milliseconds=3))


def test_gunicorn_access_log_is_redacted():
    atoms = access_log_atoms("POST", "/payments/c2b/SeCrEt-ToKeN/confirmation/", "phone=0712345678")

    text = " ".join(str(value) for value in atoms.values())
    assert "SeCrEt-ToKeN" not in text and "0712345678" not in text
    assert atoms["U"] == "/payments/c2b/<token>/confirmation/"


def test_gunicorn_access_log_hides_the_basic_auth_user_and_credential_headers():
    import base64

    basic = "Basic " + base64.b64encode(b"consumer-key-XYZ:consumer-secret").decode()

    atoms = access_log_atoms(
        "GET", "/daraja-emulator/oauth/v1/generate", "grant_type=client_credentials", {"AUTHORIZATION": basic}
    )

    text = " ".join(str(value) for value in atoms.values())
    assert "consumer-key-XYZ" not in text and basic not in text
    assert atoms["u"] == "-"
    assert atoms["{authorization}i"] == "<redacted>"


def test_the_africastalking_callback_secret_never_reaches_a_log_line():
    from core.logfilters import redact

    line = 'POST /ussd/callback/?secret=s3cr3t-Value_9 HTTP/1.1" 200 and /ussd/events/?a=1&secret=other'
    assert (
        redact(line)
        == 'POST /ussd/callback/?secret=<secret> HTTP/1.1" 200 and /ussd/events/?a=1&secret=<secret>'
    )
