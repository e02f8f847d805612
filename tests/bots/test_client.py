"""The Telegram client against the fake Bot API: Telegram's limits, 429, "not modified", 403."""

import itertools
import time

import httpx
import pytest

from bots.clients.telegram import Button, TelegramClient
from core.exceptions import ExternalServiceError
from tests.bots.fake_telegram import TOKEN

pytestmark = pytest.mark.django_db

CHAT = 4242


@pytest.fixture
def client(telegram) -> TelegramClient:
    return TelegramClient()


def test_send_and_edit(client, telegram):
    message_id = client.send_message(chat_id=CHAT, text="hello", buttons=[[Button("Go", "tok")]])
    assert telegram.shown(CHAT, message_id)["text"] == "hello"
    assert telegram.buttons(CHAT, message_id) == [("Go", "tok")]
    client.edit_message(chat_id=CHAT, message_id=message_id, text="done")
    assert telegram.shown(CHAT, message_id) == {"text": "done", "reply_markup": None}


def test_message_is_not_modified_counts_as_success(client, telegram):
    message_id = client.send_message(chat_id=CHAT, text="same")
    client.edit_message(chat_id=CHAT, message_id=message_id, text="same")  # no exception
    [edit] = telegram.sent("editMessageText")
    assert edit.params["text"] == "same"


def test_a_429_is_waited_out_and_tried_again(client, telegram):
    telegram.flood(retry_after=1)
    started = time.monotonic()
    message_id = client.send_message(chat_id=CHAT, text="after the flood")
    assert time.monotonic() - started >= 1.0
    assert [c.method for c in telegram.sent()] == ["sendMessage", "sendMessage"]
    assert telegram.shown(CHAT, message_id)["text"] == "after the flood"


def test_a_long_429_is_left_to_the_caller(client, telegram):
    telegram.flood(retry_after=120)
    with pytest.raises(ExternalServiceError) as caught:
        client.send_message(chat_id=CHAT, text="x")
    assert not caught.value.permanent
    assert "120" in caught.value.detail


def test_a_blocked_chat_is_a_permanent_blocked_error(client, telegram):
    telegram.blocked_chats.add(CHAT)
    with pytest.raises(ExternalServiceError) as caught:
        client.send_message(chat_id=CHAT, text="x")
    assert caught.value.permanent and caught.value.context == {"blocked": True}


def test_text_over_4096_characters_is_refused_permanently(client, telegram):
    client.send_message(chat_id=CHAT, text="x" * 4096)
    with pytest.raises(ExternalServiceError) as caught:
        client.send_message(chat_id=CHAT, text="x" * 4097)
    assert caught.value.permanent and "too long" in caught.value.detail


def test_callback_data_over_64_bytes_is_refused_before_sending(client, telegram):
    with pytest.raises(ExternalServiceError) as caught:
        client.send_message(chat_id=CHAT, text="x", buttons=[[Button("Go", "é" * 33)]])
    assert caught.value.permanent and "66 bytes" in caught.value.detail
    assert telegram.sent() == []


def test_the_fake_enforces_64_byte_callback_data(telegram):
    markup = '{"inline_keyboard": [[{"text": "Go", "callback_data": "%s"}]]}'
    url = f"{telegram.base_url}{TOKEN}/sendMessage"
    ok = httpx.post(url, data={"chat_id": CHAT, "text": "x", "reply_markup": markup % ("a" * 64)})
    refused = httpx.post(url, data={"chat_id": CHAT, "text": "x", "reply_markup": markup % ("a" * 65)})
    assert ok.json()["ok"] is True
    assert (refused.status_code, refused.json()["description"]) == (400, "Bad Request: BUTTON_DATA_INVALID")


def test_a_wrong_token_is_permanent(telegram, settings):
    settings.TELEGRAM_BOT_TOKEN = "999:wrong"
    with pytest.raises(ExternalServiceError) as caught:
        TelegramClient().send_message(chat_id=CHAT, text="x")
    assert caught.value.permanent


def test_without_a_token_the_bot_is_off(settings):
    settings.TELEGRAM_BOT_TOKEN = ""
    with pytest.raises(ExternalServiceError) as caught:
        TelegramClient().send_message(chat_id=CHAT, text="x")
    assert caught.value.permanent and "off" in caught.value.detail


def test_messages_to_one_chat_are_spaced_and_the_fake_sees_no_flood(fake_telegram):
    # The fake answers 429 to anything closer than this; the margin to the limiter's 0.3 s is for the
    # time between taking a slot and the request arriving (the getMe before it, a loaded machine).
    fake_telegram.chat_interval = 0.15
    with fake_telegram.override_settings(TELEGRAM_CHAT_INTERVAL=0.3):
        client = TelegramClient()
        for n in range(4):
            client.send_message(chat_id=CHAT, text=f"m{n}")
        client.send_message(chat_id=CHAT + 1, text="another chat is not held up")
    sends = fake_telegram.sent("sendMessage", chat_id=CHAT)
    gaps = [b.at - a.at for a, b in itertools.pairwise(sends)]
    assert len(sends) == 4 and all(gap >= 0.15 for gap in gaps)
