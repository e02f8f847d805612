import json
import logging
import socket
import time

import pytest
from django.test import override_settings

from core.exceptions import ExternalServiceError
from core.models import OutboxMessage
from tests.ussd.fake_africastalking import (  # noqa: F401 (fixtures)
    FIXTURES,
    Reply,
    africastalking_fixture,
    fake_africastalking_fixture,
)
from ussd.clients.sms import is_gsm7, sms_segments
from ussd.senders import send_sms

pytestmark = pytest.mark.django_db

PHONE = "+254712345678"
MASKED = "2547*****678"
BODY = "Payment of KES 1,500.00 received (QHX81ABC). Loan LOAN-000123 balance: KES 3,500.00."


def sms(body: str = BODY, recipient: str = PHONE) -> OutboxMessage:
    return OutboxMessage.objects.create(channel=OutboxMessage.Channel.SMS, recipient=recipient, body=body)


def send_failing(message: OutboxMessage) -> ExternalServiceError:
    with pytest.raises(ExternalServiceError) as caught:
        send_sms(message)
    return caught.value


# --- console ---------------------------------------------------------------------------------
@override_settings(SMS_BACKEND="console")
def test_console_prints_the_masked_number_and_the_whole_body(capsys):
    message = sms()
    assert send_sms(message) == f"console-{message.pk}"
    out = capsys.readouterr().out
    assert out == f"SMS to {MASKED}: {BODY}\n"
    assert "712345678" not in out


@override_settings(SMS_BACKEND="carrier-pigeon")
def test_an_unknown_backend_is_a_permanent_error():
    error = send_failing(sms())
    assert error.permanent
    assert "carrier-pigeon" in error.detail


# --- Africa's Talking: success ---------------------------------------------------------------
def test_africastalking_returns_the_message_id_and_sends_what_the_api_expects(africastalking):
    assert send_sms(sms()) == africastalking.message_ids[0]
    assert africastalking.message_ids[0].startswith("ATXid_")
    [request] = africastalking.requests
    assert (request.method, request.path) == ("POST", "/version1/messaging")
    assert request.form == {
        "username": africastalking.username,
        "to": PHONE,
        "message": BODY,
        "from": "HAVEN",
        "bulkSMSMode": "1",
    }
    assert request.headers["apikey"] == africastalking.api_key
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"


def test_no_sender_id_leaves_from_out(fake_africastalking):
    with fake_africastalking.override_settings(AFRICASTALKING_SENDER_ID=""):
        send_sms(sms())
    assert "from" not in fake_africastalking.requests[0].form


def test_a_local_number_is_sent_in_e164(africastalking):
    send_sms(sms(recipient="0712345678"))
    assert africastalking.requests[0].form["to"] == PHONE


def test_the_recorded_success_shape_is_understood(africastalking):
    body = africastalking.answer_fixture("send_success")
    assert send_sms(sms()) == body["SMSMessageData"]["Recipients"][0]["messageId"]


@pytest.mark.parametrize("status_code", [100, 102])
def test_processed_and_queued_also_count_as_accepted(africastalking, status_code):
    body = json.loads((FIXTURES / "send_success.json").read_text())
    body["SMSMessageData"]["Recipients"][0]["statusCode"] = status_code
    africastalking.answer(Reply(body=body))
    assert send_sms(sms()) == body["SMSMessageData"]["Recipients"][0]["messageId"]


# --- Africa's Talking: failures --------------------------------------------------------------
@pytest.mark.parametrize(
    ("fixture", "expected", "permanent"),
    [
        ("send_risk_hold", "401 RiskHold", True),
        ("send_invalid_phone_number", "403 InvalidPhoneNumber", True),
        ("send_insufficient_balance", "405 InsufficientBalance", False),
        ("send_user_in_blacklist", "406 UserInBlacklist", True),
        ("send_could_not_route", "407 CouldNotRoute", True),
        ("send_do_not_disturb", "409 DoNotDisturbRejection", True),
        ("send_internal_server_error", "500 InternalServerError", False),
        ("send_gateway_error", "501 GatewayError", False),
        ("send_rejected_by_gateway", "502 RejectedByGateway", True),
    ],
)
def test_a_refused_recipient_maps_to_permanent_or_transient(africastalking, fixture, expected, permanent):
    africastalking.answer_fixture(fixture)
    error = send_failing(sms())
    assert error.permanent is permanent
    assert error.detail == f"Africa's Talking refused the SMS to {MASKED}: {expected}"


def test_the_scripted_blacklist_answer_is_permanent(africastalking):
    africastalking.answer_recipient_failure(406, "UserInBlacklist")
    error = send_failing(sms())
    assert error.permanent
    assert error.context == {"provider_status": 406}


def test_an_unknown_recipient_code_is_permanent_below_500_and_transient_above(africastalking):
    africastalking.answer_recipient_failure(499, "SomethingNew")
    assert send_failing(sms()).permanent
    africastalking.answer_recipient_failure(503, "SomethingElse")
    assert not send_failing(sms()).permanent


def test_no_recipient_in_the_answer_is_permanent(africastalking):
    africastalking.answer_fixture("send_invalid_sender_id")
    error = send_failing(sms())
    assert error.permanent
    assert error.detail == "Africa's Talking sent to no one: InvalidSenderId"


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (503, False), (429, False), (400, True)])
def test_http_errors_map_by_status(africastalking, status, permanent):
    africastalking.answer_http_error(status, f"error for {PHONE}")
    error = send_failing(sms())
    assert error.permanent is permanent
    assert error.detail == f"Africa's Talking answered HTTP {status}: error for {MASKED}"


def test_a_2xx_answer_that_is_not_json_is_transient(africastalking):
    africastalking.answer(Reply(status=201, body="<html>gateway</html>"))
    error = send_failing(sms())
    assert not error.permanent
    assert "HTTP 201 with no JSON" in error.detail


def test_a_wrong_api_key_is_permanent_and_not_repeated_in_the_error(fake_africastalking):
    with fake_africastalking.override_settings(AFRICASTALKING_API_KEY="atsk_wrong_key"):
        error = send_failing(sms())
    assert fake_africastalking.requests[0].headers["apikey"] == "atsk_wrong_key"  # the real 401 path
    assert error.permanent
    assert "HTTP 401" in error.detail
    assert "atsk_wrong_key" not in error.detail


def test_a_slow_answer_times_out_as_transient_after_the_configured_timeout(fake_africastalking):
    fake_africastalking.answer_slowly(3)
    started = time.monotonic()
    with fake_africastalking.override_settings(SMS_HTTP_TIMEOUT=1):
        error = send_failing(sms())
    elapsed = time.monotonic() - started
    assert not error.permanent
    assert error.detail == "Africa's Talking did not answer within 1 s"
    assert 0.9 <= elapsed < 2.5


def test_a_refused_connection_is_transient(fake_africastalking):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with fake_africastalking.override_settings(AFRICASTALKING_BASE_URL=f"http://127.0.0.1:{closed_port}"):
        error = send_failing(sms())
    assert not error.permanent
    assert error.detail == "could not reach Africa's Talking (ConnectionError)"


@pytest.mark.parametrize("missing", ["AFRICASTALKING_USERNAME", "AFRICASTALKING_API_KEY"])
def test_missing_credentials_are_a_clear_permanent_error(fake_africastalking, missing):
    with fake_africastalking.override_settings(**{missing: ""}):
        error = send_failing(sms())
    assert error.permanent
    assert error.detail == (
        "Africa's Talking credentials are missing: set AFRICASTALKING_USERNAME and AFRICASTALKING_API_KEY"
    )
    assert fake_africastalking.requests == []


def test_a_recipient_that_is_not_a_phone_number_is_permanent_and_never_sent(africastalking):
    error = send_failing(sms(recipient="12345"))
    assert error.permanent
    assert error.detail == "***** is not an E.164 phone number"
    assert africastalking.requests == []


def test_credentials_are_read_at_each_send_not_kept(fake_africastalking):
    with fake_africastalking.override_settings(AFRICASTALKING_API_KEY="atsk_old_key"):
        assert send_failing(sms()).permanent
    with fake_africastalking.override_settings():
        assert send_sms(sms()) == fake_africastalking.message_ids[0]
    assert [r.headers["apikey"] for r in fake_africastalking.requests] == [
        "atsk_old_key",
        fake_africastalking.api_key,
    ]


def test_logs_mask_the_number_and_never_carry_the_api_key(africastalking, caplog):
    caplog.set_level(logging.DEBUG)
    send_sms(sms())
    africastalking.answer_http_error(401, "The supplied authentication is invalid")
    send_failing(sms())
    assert f"SMS to {MASKED} accepted by Africa's Talking" in caplog.text
    assert africastalking.api_key not in caplog.text
    assert "712345678" not in caplog.text


# --- message safety --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "gsm7"),
    [
        ("Payment of KES 1,500.00 received. Asante!", True),
        ("@£$¥ èéùìò Ç Øø Åå Δ_ΦΓΛΩΠΨΣΘΞ Ææß É ¤ ¡ ÄÖÑÜ § ¿ äöñüà\r\n", True),
        ("Extension: ^ { } \\ [ ~ ] | €", True),
        ("Asante \u201cJane\u201d", False),  # curly double quotes
        ("Don\u2019t", False),  # curly apostrophe
        ("KES\u00a0500", False),  # non-breaking space
        ("Balance \u2013 KES 500", False),  # en dash
        ("`code`", False),  # the backtick is not in GSM-7
        ("Asante \U0001f600", False),
    ],
)
def test_is_gsm7(text, gsm7):
    assert is_gsm7(text) is gsm7


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets: an extension character counts two
        ("€" * 81, 2),
        ("a" * 158 + "{", 1),
        ("a" * 159 + "{", 2),
        ("a" * 152 + "€" + "a" * 152, 3),  # 306 septets, but the € cannot be split across segments
        ("\u2019" + "a" * 69, 1),  # one curly quote: UCS-2, 70 a segment
        ("\u2019" + "a" * 70, 2),
        ("\u2019" + "a" * 133, 2),
        ("\u2019" + "a" * 134, 3),
        ("\U0001f600" * 35, 1),  # an emoji is two UTF-16 units
        ("\U0001f600" * 36, 2),
    ],
)
def test_sms_segments(text, segments):
    assert sms_segments(text) == segments


@override_settings(SMS_BACKEND="console")
def test_a_non_gsm7_body_is_a_warning_and_still_sent(caplog, capsys):
    body = "Asante \u201cJane\u201d, malipo yamepokelewa."
    message = sms(body=body)
    with caplog.at_level(logging.WARNING, logger="ussd.senders"):
        send_sms(message)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"outbox SMS {message.pk} is not GSM-7 (characters '\u201c\u201d'): sent as UCS-2 in 1 segment(s)"
    )
    assert capsys.readouterr().out == f"SMS to {MASKED}: {body}\n"


@override_settings(SMS_BACKEND="console")
def test_a_long_body_is_a_warning_and_still_sent(caplog, capsys):
    message = sms(body="a" * 200)
    with caplog.at_level(logging.WARNING, logger="ussd.senders"):
        send_sms(message)
    assert [r.getMessage() for r in caplog.records] == [f"outbox SMS {message.pk} takes 2 segments"]
    assert "a" * 200 in capsys.readouterr().out


@override_settings(SMS_BACKEND="console")
def test_a_short_gsm7_body_is_not_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="ussd.senders"):
        send_sms(sms())
    assert caplog.records == []
