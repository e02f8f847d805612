"""manage.py telegram_link, telegram_webhook and telegram_poll against the fake Bot API."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from bots import texts
from bots.models import TelegramUpdate
from core.models import User
from tests.bots.conftest import SECRET, text_update
from tests.factories import OfficerFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_telegram_link_prints_a_single_use_code_and_its_link(telegram):
    officer = OfficerFactory(username="otieno")
    code, link, _ = run("telegram_link", "otieno").splitlines()
    assert link == f"https://t.me/haven_test_bot?start={code}"
    officer.refresh_from_db()
    assert officer.telegram_link_code_digest and code not in officer.telegram_link_code_digest
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        run("telegram_link", "nobody")
    User.objects.filter(pk=officer.pk).update(is_active=False)
    with pytest.raises(CommandError, match="not active staff"):
        run("telegram_link", "otieno")


def test_telegram_webhook_set_info_delete(telegram):
    assert run("telegram_webhook", "set", "https://pay.haven.example/bots/telegram/") == (
        "Webhook set to https://pay.haven.example/bots/telegram/ for message, callback_query.\n"
    )
    assert telegram.webhook == {
        "url": "https://pay.haven.example/bots/telegram/",
        "secret_token": SECRET,
        "allowed_updates": ["message", "callback_query"],
    }
    info = json.loads(run("telegram_webhook", "info"))
    assert (info["url"], info["allowed_updates"]) == (
        "https://pay.haven.example/bots/telegram/",
        ["message", "callback_query"],
    )
    assert run("telegram_webhook", "delete") == "Webhook deleted.\n"
    assert telegram.webhook == {}
    with pytest.raises(CommandError, match="https:// URL"):
        run("telegram_webhook", "set", "http://insecure.example/")


def test_telegram_poll_handles_each_update_once(telegram):
    telegram.updates = [text_update(from_id=555, text="/help", update_id=7001)]
    out = run("telegram_poll", "--once", "--timeout", "0")
    assert "update 7001: refused: not linked staff" in out
    assert telegram.sent("sendMessage")[0].params == {"chat_id": 555, "text": texts.STRANGER}
    run("telegram_poll", "--once", "--timeout", "0")  # the fake offers it again: stored already
    assert len(telegram.sent("sendMessage")) == 1
    assert TelegramUpdate.objects.get().status == "processed"
    polls = telegram.sent("getUpdates")
    assert [call.params["allowed_updates"] for call in polls] == [["message", "callback_query"]] * 2


def test_telegram_poll_stops_with_a_clear_error_while_a_webhook_is_set(telegram):
    run("telegram_webhook", "set", "https://pay.haven.example/bots/telegram/")
    with pytest.raises(CommandError, match="telegram_webhook delete"):
        run("telegram_poll", "--once", "--timeout", "0")
