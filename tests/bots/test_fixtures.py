"""Updates in the shape Telegram sends them (tests/fixtures/telegram/), fields the library does not
know included, go through the webhook like the ones built with python-telegram-bot's classes."""

import json
from pathlib import Path

import pytest

from bots.models import TelegramUpdate
from tests.bots.conftest import link
from tests.factories import AdminFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_a_recorded_command_update(telegram, post_update):
    link(AdminFactory(), 7311094421)
    assert post_update(fixture("message_command.json")).status_code == 200
    [reply] = telegram.sent("sendMessage")
    assert reply.params["chat_id"] == 7311094421 and reply.params["text"].startswith("Today\nPayments: 0")
    assert TelegramUpdate.objects.get().status == "processed"


def test_a_recorded_tap_with_an_unknown_token(telegram, post_update):
    link(AdminFactory(), 7311094421)
    post_update(fixture("callback_query.json"))
    [answer] = telegram.sent("answerCallbackQuery")
    assert answer.params == {"callback_query_id": "3140095117339027342", "text": "This button is not valid."}
