"""Operational alerts on a held clock: each fires once when its problem starts, stays quiet while it
lasts, and says once that it cleared; admins hear both through the outbox, Django admin keeps both."""

import datetime
import json
from zoneinfo import ZoneInfo

import pytest

from core.models import OpsIncident, OutboxMessage
from payments.models import CallbackRequest, MpesaTransaction
from payments.parsing import parse_c2b_body
from payments.services.monitoring import ops_checks_run, within_alert_hours
from payments.services.storing import new_transaction
from tests.factories import AdminFactory, MpesaConfigurationFactory, OfficerFactory
from tests.payments.conftest import daraja_payload

pytestmark = pytest.mark.django_db

NAIROBI = ZoneInfo("Africa/Nairobi")
# A Tuesday morning, inside the default alert hours (07:00-21:00).
T = datetime.datetime(2026, 3, 10, 10, 15, tzinfo=NAIROBI)
MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture
def admin_with_phone():
    return AdminFactory(phone="+254700000001")


@pytest.fixture
def config():
    return MpesaConfigurationFactory(business_short_code="600984")


_numbers = iter(range(1, 10_000))


def payment(config, *, received_at, trans_time=None, status="processed") -> MpesaTransaction:
    trans_id = f"SAB{next(_numbers):07d}"
    body = json.dumps(daraja_payload("confirmation_hashed.json", TransID=trans_id), default=str)
    tx = new_transaction(parse_c2b_body(body), config)
    tx.save(force_insert=True)
    MpesaTransaction.objects.filter(pk=tx.pk).update(
        received_at=received_at, trans_time=trans_time or received_at, status=status
    )
    return tx


def ops_messages(alert: str) -> list[str]:
    return list(
        OutboxMessage.objects.filter(context__kind="ops", context__alert=alert)
        .order_by("id")
        .values_list("body", flat=True)
    )


def run(now: datetime.datetime) -> list[tuple[str, bool]]:
    """Run the checks at ``now``; what changed, as (key, now resolved)."""
    return [(incident.key, incident.resolved_at is not None) for incident in ops_checks_run(now=now)]


@pytest.mark.usefixtures("admin_with_phone")
def test_silence_fires_once_and_clears_once(config):
    officer = OfficerFactory(phone="+254700000002")  # not an admin: not told
    payment(config, received_at=T - datetime.timedelta(days=3, minutes=-20))  # Saturday 10:35
    payment(config, received_at=T - 30 * MINUTE)

    assert run(T) == []  # the last confirmation is 30 min old
    assert run(T + 31 * MINUTE) == [("silence:600984", False)]
    assert run(T + 32 * MINUTE) == []
    assert run(T + 50 * MINUTE) == []
    payment(config, received_at=T + 55 * MINUTE)
    assert run(T + 56 * MINUTE) == [("silence:600984", True)]
    assert run(T + 57 * MINUTE) == []

    opened, resolved = ops_messages("silence")
    assert opened.startswith(
        "ALERT: No M-Pesa confirmation on paybill 600984 for 60 min (the last 10 Mar 09:45)"
    )
    assert resolved == (
        "RESOLVED after 25 min: M-Pesa confirmations are arriving again on paybill 600984 (last 10 Mar 11:10)."
    )
    sent = OutboxMessage.objects.filter(context__kind="ops")
    assert {(m.channel, m.recipient) for m in sent} == {("sms", "+254700000001")}
    assert not sent.filter(user=officer).exists()
    incident = OpsIncident.objects.get()
    assert (incident.alert, incident.opened_at, incident.resolved_at) == (
        "silence",
        T + 31 * MINUTE,
        T + 56 * MINUTE,
    )
    assert incident.resolution.startswith("M-Pesa confirmations are arriving again")


@pytest.mark.usefixtures("admin_with_phone")
def test_a_duplicate_or_malformed_confirmation_is_an_arrival_too(config):
    payment(config, received_at=T - datetime.timedelta(days=1))
    payment(config, received_at=T - 90 * MINUTE)
    assert run(T) == [("silence:600984", False)]
    request = CallbackRequest.objects.create(kind="confirmation", config=config, outcome="duplicate")
    CallbackRequest.objects.filter(pk=request.pk).update(received_at=T + MINUTE)
    assert run(T + 2 * MINUTE) == [("silence:600984", True)]


@pytest.mark.usefixtures("admin_with_phone")
@pytest.mark.parametrize(
    ("now", "history"),
    [
        pytest.param(T.replace(hour=22, minute=30), True, id="outside-alert-hours"),
        pytest.param(T, False, id="never-paid-at-this-hour"),
    ],
)
def test_no_silence_alert_when_none_is_due(config, now, history):
    if history:
        payment(config, received_at=now - datetime.timedelta(days=2))
    else:
        payment(config, received_at=now - datetime.timedelta(days=2, hours=3))  # another hour
    payment(config, received_at=now - 5 * 60 * MINUTE)
    assert run(now) == []
    assert not OutboxMessage.objects.exists()


@pytest.mark.usefixtures("admin_with_phone")
def test_an_inactive_paybill_is_not_watched(config):
    config.is_active = False
    config.save()
    payment(config, received_at=T - datetime.timedelta(days=1))
    assert run(T) == []


def test_alert_hours(settings):
    assert within_alert_hours(T.replace(hour=7, minute=0)) and not within_alert_hours(T.replace(hour=21))
    assert not within_alert_hours(T.replace(hour=6, minute=59))
    settings.ALERT_HOURS = "20:00-06:00"  # across midnight
    assert within_alert_hours(T.replace(hour=23)) and within_alert_hours(T.replace(hour=5, minute=59))
    assert not within_alert_hours(T.replace(hour=6))
    # A UTC moment is read in Nairobi time: 04:30 UTC is 07:30 there.
    settings.ALERT_HOURS = "07:00-24:00"
    assert within_alert_hours(datetime.datetime(2026, 3, 10, 4, 30, tzinfo=datetime.UTC))


@pytest.mark.usefixtures("admin_with_phone")
def test_failure_rate_fires_once_and_clears_once(config):
    for minute in range(15):
        payment(config, received_at=T - minute * MINUTE)
    for minute in range(5):
        payment(config, received_at=T - minute * MINUTE, status="unmatched" if minute % 2 else "failed")
    assert run(T) == [("failure_rate", False)]  # 5 of 20 = 25%
    payment(config, received_at=T + MINUTE)
    assert run(T + 2 * MINUTE) == []  # 5 of 21, still over
    for _ in range(5):
        payment(config, received_at=T + 2 * MINUTE)
    assert run(T + 3 * MINUTE) == [("failure_rate", True)]  # 5 of 26 = 19%
    assert run(T + 4 * MINUTE) == []

    opened, resolved = ops_messages("failure_rate")
    assert opened == (
        "ALERT: 5 of 20 payments in the last 30 min failed or found no borrower (25%, over 20%). "
        "See the payments needing attention."
    )
    assert resolved == (
        "RESOLVED after 3 min: 5 of 26 payments in the last 30 min failed or found no borrower (19%, within 20%)."
    )


@pytest.mark.usefixtures("admin_with_phone")
def test_failure_rate_needs_twenty_payments_to_judge(config):
    for minute in range(19):
        payment(config, received_at=T - minute * MINUTE, status="failed")
    assert run(T) == []
    # Payments older than 30 minutes do not count.
    payment(config, received_at=T - 31 * MINUTE, status="failed")
    assert run(T) == []


@pytest.mark.usefixtures("admin_with_phone")
def test_backlog_fires_once_and_clears_once(config, settings):
    assert settings.ALERT_BACKLOG_SECONDS == 120
    waiting = payment(config, received_at=T, status="received")
    payment(config, received_at=T + MINUTE, status="received")
    assert run(T + 120 * datetime.timedelta(seconds=1)) == []
    assert run(T + 121 * datetime.timedelta(seconds=1)) == [("backlog", False)]
    assert run(T + 5 * MINUTE) == []
    MpesaTransaction.objects.filter(pk=waiting.pk).update(status="processed")
    assert run(T + 6 * MINUTE) == []  # the other one has waited 5 min: the same episode goes on
    MpesaTransaction.objects.filter(status="received").update(status="processed")
    assert run(T + 7 * MINUTE) == [("backlog", True)]
    assert run(T + 8 * MINUTE) == []

    opened, resolved = ops_messages("backlog")
    assert opened == (
        "ALERT: 2 payment(s) waiting to be posted, the oldest for 121 s (limit 120 s): "
        "the payment worker is down or behind."
    )
    assert resolved == (
        "RESOLVED after 5 min: The payment worker has caught up: no payment has waited more than 120 s."
    )


def failing_sms(*, created_at, next_attempt_at, status="pending") -> OutboxMessage:
    message = OutboxMessage.objects.create(
        channel="sms", recipient="+254711000001", body="receipt", status=status, attempts=2
    )
    OutboxMessage.objects.filter(pk=message.pk).update(
        created_at=created_at, next_attempt_at=next_attempt_at, last_error="gateway timeout"
    )
    return message


@pytest.mark.usefixtures("admin_with_phone")
def test_outbox_failing_for_ten_minutes_fires_once_and_clears_once():
    sent = OutboxMessage.objects.create(channel="sms", recipient="+254711000002", body="ok", status="sent")
    OutboxMessage.objects.filter(pk=sent.pk).update(created_at=T - 30 * MINUTE, sent_at=T - 30 * MINUTE)
    failing_sms(created_at=T - 12 * MINUTE, next_attempt_at=T + MINUTE)  # retrying
    failing_sms(created_at=T - 2 * MINUTE, next_attempt_at=T - MINUTE, status="failed")

    assert run(T - 3 * MINUTE) == []  # failing for 9 minutes only
    assert run(T) == [("outbox:sms", False)]
    assert run(T + MINUTE) == []
    recovered = OutboxMessage.objects.create(
        channel="sms", recipient="+254711000003", body="ok", status="sent"
    )
    OutboxMessage.objects.filter(pk=recovered.pk).update(created_at=T + MINUTE, sent_at=T + 2 * MINUTE)
    assert run(T + 3 * MINUTE) == [("outbox:sms", True)]
    assert run(T + 4 * MINUTE) == []

    opened, resolved = ops_messages("outbox")
    assert (
        opened == "ALERT: Outbox: sms deliveries have been failing for 12 min (last delivered 10 Mar 09:45)."
    )
    assert resolved == "RESOLVED after 3 min: Outbox: sms deliveries are no longer failing."
    assert not OpsIncident.objects.filter(key="outbox:telegram").exists()


@pytest.mark.usefixtures("admin_with_phone")
def test_one_message_that_fails_for_good_is_not_a_failing_channel():
    # A wrong number fails at once and for good; nothing else is tried: no alert, ten minutes on.
    failing_sms(created_at=T - 15 * MINUTE, next_attempt_at=T - 15 * MINUTE, status="failed")
    assert run(T) == []


def test_the_beat_task_runs_the_checks_now(config, admin_with_phone, settings):
    from django.utils import timezone

    from payments.tasks import ops_check_task

    assert settings.CELERY_BEAT_SCHEDULE["ops-alerts"] == {"task": "payments.ops_check", "schedule": 60.0}
    payment(config, received_at=timezone.now() - 10 * MINUTE, status="received")
    assert ops_check_task() == 1
    assert ops_check_task() == 0
    incident = OpsIncident.objects.get()
    assert (incident.key, incident.resolved_at) == ("backlog", None)
    message = OutboxMessage.objects.get()
    assert (message.user, message.context) == (admin_with_phone, {"kind": "ops", "alert": "backlog"})


def test_incidents_are_listed_in_django_admin(client, admin_with_phone, config):
    payment(config, received_at=T, status="received")
    run(T + 10 * MINUTE)
    client.force_login(admin_with_phone)
    response = client.get("/admin/core/opsincident/?state=open")
    assert response.status_code == 200
    assert b"payment(s) waiting to be posted" in response.content
    page = client.get(f"/admin/core/opsincident/{OpsIncident.objects.get().pk}/change/")
    assert page.status_code == 200 and b"Add ops incident" not in page.content
