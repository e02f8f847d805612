"""manage.py telegram_link, telegram_webhook and telegram_poll against the fake Bot API."""

import hashlib
import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from bots import texts
from bots.models import TelegramUpdate
from core.models import User
from tests.bots.conftest import SECRET, text_update
from tests.factories import AdminFactory, OfficerFactory

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


def test_telegram_link_with_the_bot_off_says_so_and_how_to_turn_it_on(
    settings, fake_telegram, post_update, client
):
    settings.TELEGRAM_BOT_TOKEN = settings.TELEGRAM_BOT_USERNAME = ""
    officer = OfficerFactory(username="otieno", first_name="Otieno", last_name="Odhiambo")
    # The Django admin's page says so too (a later code replaces this one).
    client.force_login(AdminFactory())
    page = client.post(f"/admin/core/user/{officer.pk}/telegram-link/").content.decode()
    assert "The Telegram bot is off" in page and "@BotFather" in page and "t.me" not in page
    assert re.search(r"<code>/start [A-Za-z0-9_-]{32}</code>", page)

    out = run("telegram_link", "otieno")
    code, off, kept = out.splitlines()
    assert "t.me" not in out and "YOUR_BOT" not in out  # no link that names no bot
    assert off == (
        "The Telegram bot is off: TELEGRAM_BOT_TOKEN and TELEGRAM_BOT_USERNAME are not set, so there is no "
        "link to open. To turn it on, create a bot with @BotFather, set those two to its token and its "
        "username (see .env.example), restart the web server and the workers, then register the webhook "
        "(manage.py telegram_webhook set https://<host>/bots/telegram/), or in development run "
        "manage.py telegram_poll."
    )
    assert kept == (
        f"The code is kept: if the bot is on within 15 minutes, otieno sends /start {code} to it "
        "(it works once); after that, run this command again for a new code and its link."
    )
    officer.refresh_from_db()
    assert officer.telegram_link_code_digest == hashlib.sha256(code.encode()).hexdigest()

    # Turned on within the 15 minutes, the bot takes the printed code.
    with fake_telegram.override_settings():
        post_update(text_update(from_id=4242, text=f"/start {code}"))
    officer.refresh_from_db()
    assert (officer.telegram_user_id, officer.telegram_link_code_digest) == (4242, None)
    assert fake_telegram.sent("sendMessage")[-1].params["text"] == texts.linked("Otieno Odhiambo")


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
