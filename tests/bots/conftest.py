"""Helpers for the staff bot's tests: Telegram updates built with python-telegram-bot's own classes,
posted to the webhook with the secret, and staff members linked to fake Telegram accounts."""

import datetime
import itertools

import pytest
from telegram import CallbackQuery, Chat, Message, MessageEntity, Update
from telegram import User as TelegramUser

from core.models import User
from tests.bots.fake_telegram import (  # noqa: F401 (fixtures)
    BOT_ID,
    BOT_USERNAME,
    fake_telegram_fixture,
    telegram_fixture,
)
from tests.cache import clear_test_cache

SECRET = "webhook-secret-for-tests-0123456789"
_update_ids = itertools.count(500_000)
_message_ids = itertools.count(9_000)
_query_ids = itertools.count(1)
BOT = TelegramUser(id=BOT_ID, first_name="Haven", is_bot=True, username=BOT_USERNAME)


@pytest.fixture(autouse=True)
def _clean_cache(django_db_blocker):
    # Rate-limit slots and action locks live in the cache: each test starts without any.
    clear_test_cache(django_db_blocker)
    yield
    clear_test_cache(django_db_blocker)


def person(telegram_user_id: int, first_name: str = "Amina") -> TelegramUser:
    return TelegramUser(id=telegram_user_id, first_name=first_name, is_bot=False, language_code="en")


def text_update(
    *,
    from_id: int,
    text: str,
    chat_id: int | None = None,
    chat_type: str = Chat.PRIVATE,
    reply_to: int | None = None,
    update_id: int | None = None,
) -> dict:
    """A message update as Telegram sends it (a leading /command carries its bot_command entity)."""
    chat = Chat(id=chat_id if chat_id is not None else from_id, type=chat_type)
    entities = []
    if text.startswith("/"):
        entities = [MessageEntity(type=MessageEntity.BOT_COMMAND, offset=0, length=len(text.split(" ")[0]))]
    replied = (
        Message(message_id=reply_to, date=_now(), chat=chat, from_user=BOT, text="question")
        if reply_to is not None
        else None
    )
    message = Message(
        message_id=next(_message_ids),
        date=_now(),
        chat=chat,
        from_user=person(from_id),
        text=text,
        entities=entities,
        reply_to_message=replied,
    )
    return Update(update_id=update_id or next(_update_ids), message=message).to_dict()


def tap_update(
    *, from_id: int, data: str, chat_id: int, message_id: int, update_id: int | None = None
) -> dict:
    """A button tap (callback query) on the bot's message ``message_id`` in ``chat_id``."""
    message = Message(
        message_id=message_id,
        date=_now(),
        chat=Chat(id=chat_id, type=Chat.PRIVATE),
        from_user=BOT,
        text="alert",
    )
    query = CallbackQuery(
        id=str(next(_query_ids)),
        from_user=person(from_id),
        chat_instance=f"ci-{chat_id}",
        data=data,
        message=message,
    )
    return Update(update_id=update_id or next(_update_ids), callback_query=query).to_dict()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


@pytest.fixture
def post_update(client, django_capture_on_commit_callbacks):
    """POST an update (a dict, or raw bytes) to the webhook; its handling task runs on commit."""
    import json

    def post(data, *, secret: str | None = SECRET, **extra):
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        headers = {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": secret} if secret is not None else {}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                "/bots/telegram/", data=body, content_type="application/json", **headers, **extra
            )

    return post


def link(user: User, telegram_user_id: int) -> User:
    """Link ``user`` as the services would after /start (chat id = user id: a private chat)."""
    user.telegram_user_id = telegram_user_id
    user.telegram_chat_id = telegram_user_id
    user.telegram_unreachable = False
    user.save(update_fields=["telegram_user_id", "telegram_chat_id", "telegram_unreachable"])
    return user


@pytest.fixture
def mpesa_config(db):
    from tests.factories import MpesaConfigurationFactory

    return MpesaConfigurationFactory()
