"""The Telegram channel is on only with a token, refuses an incomplete setup at start-up, and
staff_channels picks Telegram for linked, reachable staff while it is on."""

import json

import pytest

from core.models import User
from core.services.outbox import staff_channels
from tests.factories import OfficerFactory
from tests.test_settings import DEVELOPMENT, PRODUCTION, run

SENDERS = "from django.conf import settings; import json; print(json.dumps(settings.OUTBOX_SENDERS))"


def senders_with(**env: str) -> dict:
    result = run(["-c", "import django; django.setup(); " + SENDERS], **(DEVELOPMENT | env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_telegram_sender_is_registered_only_with_a_token():
    assert senders_with() == {"sms": "ussd.senders.send_sms"}
    assert senders_with(TELEGRAM_BOT_TOKEN="1:x", TELEGRAM_BOT_USERNAME="haven_bot") == {
        "sms": "ussd.senders.send_sms",
        "telegram": "bots.senders.send_telegram",
    }


def test_an_incomplete_telegram_setup_fails_at_start():
    no_username = run(["-c", "import django; django.setup()"], **DEVELOPMENT, TELEGRAM_BOT_TOKEN="1:x")
    assert no_username.returncode != 0 and "TELEGRAM_BOT_USERNAME" in no_username.stderr
    no_secret = run(
        ["-c", "import django; django.setup()"],
        **PRODUCTION,
        TELEGRAM_BOT_TOKEN="1:x",
        TELEGRAM_BOT_USERNAME="haven_bot",
    )
    assert no_secret.returncode != 0 and "TELEGRAM_WEBHOOK_SECRET" in no_secret.stderr
    no_staff_url = run(
        ["-c", "import django; django.setup()"],
        **PRODUCTION,
        TELEGRAM_BOT_TOKEN="1:x",
        TELEGRAM_BOT_USERNAME="haven_bot",
        TELEGRAM_WEBHOOK_SECRET="s" * 32,
    )
    assert no_staff_url.returncode != 0 and "STAFF_BASE_URL" in no_staff_url.stderr
    complete = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **PRODUCTION,
        TELEGRAM_BOT_TOKEN="1:x",
        TELEGRAM_BOT_USERNAME="haven_bot",
        TELEGRAM_WEBHOOK_SECRET="s" * 32,
        STAFF_BASE_URL="https://pay.haven.example",
    )
    assert complete.returncode == 0, complete.stderr


@pytest.mark.django_db
def test_staff_channels_prefers_a_reachable_telegram_chat_while_the_channel_is_on(settings):
    settings.OUTBOX_SENDERS = {"sms": "ussd.senders.send_sms", "telegram": "bots.senders.send_telegram"}
    officer = OfficerFactory(phone="+254700111222")
    assert staff_channels(officer) == [("sms", "+254700111222")]
    User.objects.filter(pk=officer.pk).update(telegram_user_id=77, telegram_chat_id=77)
    officer.refresh_from_db()
    assert staff_channels(officer) == [("telegram", "77")]
    User.objects.filter(pk=officer.pk).update(telegram_unreachable=True)
    officer.refresh_from_db()
    assert staff_channels(officer) == [("sms", "+254700111222")]
    User.objects.filter(pk=officer.pk).update(telegram_unreachable=False)
    officer.refresh_from_db()
    settings.OUTBOX_SENDERS = {"sms": "ussd.senders.send_sms"}  # no token: the channel is off
    assert staff_channels(officer) == [("sms", "+254700111222")]
