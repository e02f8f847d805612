"""The Telegram Bot API, called synchronously from Celery tasks and management commands.

python-telegram-bot is async; each call here runs ``asyncio.run`` around ``async with Bot(...)``, a
Bot made for that call (a Bot kept across ``asyncio.run`` calls fails with "Event loop is closed").
``TELEGRAM_API_BASE_URL`` points it elsewhere (a fake Bot API server in tests).

Every call that writes to a chat first takes a slot from ``TelegramLimiter`` (in the shared cache, so
all workers together keep to Telegram's limits). A 429 is waited out (``retry_after``) and tried
again; "message is not modified" is a success; a chat that blocked the bot raises
``ExternalServiceError(permanent=True, blocked=True)``; other failures raise ``ExternalServiceError``
whose ``permanent`` flag says whether trying again can help.
"""

import asyncio
import datetime
import logging
import math
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from telegram import Bot, ForceReply, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from core.exceptions import ExternalServiceError

logger = logging.getLogger(__name__)

CALLBACK_DATA_MAX_BYTES = 64
# The longest a 429 is waited out inside one call; longer, the caller retries later (outbox backoff).
MAX_RETRY_WAIT = 30.0
RETRIES_AFTER_429 = 3
# The longest a call waits for a rate-limit slot before giving up (transiently).
MAX_SLOT_WAIT = 60.0
PAUSE_KEY = "telegram:paused-until"
LOCK_KEY = "telegram:limiter-lock"
SENT_KEY = "telegram:sent"
# A worker that dies holding the limiter's lock blocks the others this long at most.
LOCK_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Button:
    text: str
    callback_data: str


Keyboard = list[list[Button]]


class TelegramLimiter:
    """Telegram's limits for every process at once: one message per ``TELEGRAM_CHAT_INTERVAL`` seconds
    per chat and ``TELEGRAM_MESSAGES_PER_SECOND`` in all, and a pause for everyone after a 429.

    The state (when each chat last got a message, the send times of the last second) lives in the
    shared cache and is read and written under a lock taken with ``cache.add``, atomic on Redis and
    on the database cache. Times are values compared here, not key expiries: the database cache
    rounds expiries to whole seconds, too coarse for these limits."""

    def acquire(self, chat_id: int | None) -> float:
        """Wait for a slot to write to ``chat_id`` (None: a call that is not a message, only the
        pause applies). Returns the time (``time.time()``) the slot was recorded at. Raises a
        transient ``ExternalServiceError`` after ``MAX_SLOT_WAIT``."""
        deadline = time.monotonic() + MAX_SLOT_WAIT
        while True:
            paused_until = cache.get(PAUSE_KEY)
            if paused_until is None or paused_until <= time.time():
                taken = time.time() if chat_id is None else self._take(chat_id)
                if taken is not None:
                    return taken
            if time.monotonic() > deadline:
                raise ExternalServiceError("waited too long for a Telegram rate-limit slot")
            time.sleep(0.02)

    def _take(self, chat_id: int) -> float | None:
        if not cache.add(LOCK_KEY, 1, timeout=LOCK_SECONDS):
            return None
        try:
            now = time.time()
            chat_key = f"telegram:chat:{chat_id}"
            found = cache.get_many([chat_key, SENT_KEY])
            last = found.get(chat_key)
            recent = [at for at in found.get(SENT_KEY, []) if now - at < 1.0]
            if last is not None and now - last < settings.TELEGRAM_CHAT_INTERVAL:
                return None
            if len(recent) >= settings.TELEGRAM_MESSAGES_PER_SECOND:
                return None
            keep_for = math.ceil(max(settings.TELEGRAM_CHAT_INTERVAL, 1.0)) + 2
            cache.set_many({chat_key: now, SENT_KEY: [*recent, now]}, timeout=keep_for)
            return now
        finally:
            cache.delete(LOCK_KEY)

    def pause(self, seconds: float) -> None:
        cache.set(PAUSE_KEY, time.time() + seconds, timeout=math.ceil(seconds) + 1)


def _keyboard(buttons: Keyboard | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    for row in buttons:
        for button in row:
            size = len(button.callback_data.encode("utf-8"))
            if not 1 <= size <= CALLBACK_DATA_MAX_BYTES:
                raise ExternalServiceError(f"callback_data of {size} bytes (1-64 allowed)", permanent=True)
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.text, callback_data=b.callback_data) for b in row] for row in buttons]
    )


def _retry_after(exc: RetryAfter) -> float:
    # PTB 22 warns that retry_after will become a timedelta; take either, without the warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, datetime.timedelta) else float(value)


def _not_modified(exc: BadRequest) -> bool:
    return exc.message.lower().startswith("message is not modified")


class TelegramClient:
    """One wrapper for every Bot API method the project uses. Credentials are read at each call."""

    def __init__(self, limiter: TelegramLimiter | None = None) -> None:
        self.limiter = limiter or TelegramLimiter()

    def _bot(self, *, read_timeout: float | None = None) -> Bot:
        token = settings.TELEGRAM_BOT_TOKEN
        if not token:
            raise ExternalServiceError("TELEGRAM_BOT_TOKEN is not set: the bot is off", permanent=True)
        timeout = settings.TELEGRAM_HTTP_TIMEOUT
        request = HTTPXRequest(
            connect_timeout=timeout, read_timeout=read_timeout or timeout, write_timeout=timeout
        )
        return Bot(
            token, base_url=settings.TELEGRAM_API_BASE_URL, request=request, get_updates_request=request
        )

    def _call(
        self, chat_id: int | None, call: Callable[[Bot], Awaitable[Any]], *, read_timeout: float | None = None
    ) -> Any:
        async def run() -> Any:
            async with self._bot(read_timeout=read_timeout) as bot:
                return await call(bot)

        for attempt in range(RETRIES_AFTER_429 + 1):
            self.limiter.acquire(chat_id)
            try:
                return asyncio.run(run())
            except RetryAfter as exc:
                wait = _retry_after(exc)
                self.limiter.pause(wait)
                if wait > MAX_RETRY_WAIT or attempt == RETRIES_AFTER_429:
                    raise ExternalServiceError(f"Telegram asks to wait {wait:.0f} s (429)") from exc
                logger.warning("Telegram 429 for chat %s: waiting %.1f s", chat_id, wait)
                time.sleep(wait)
            except BadRequest as exc:
                if _not_modified(exc):
                    return None  # the message already says this: what was wanted
                raise ExternalServiceError(
                    f"Telegram refused the call: {exc.message}", permanent=True
                ) from exc
            except Forbidden as exc:
                raise ExternalServiceError(
                    f"Telegram chat {chat_id} refuses the bot: {exc.message}", permanent=True, blocked=True
                ) from exc
            except Conflict as exc:
                # getUpdates while a webhook is set (or a second poller): retrying cannot help.
                raise ExternalServiceError(
                    f"Telegram refused: {exc.message} (a webhook is set or another poller runs; "
                    "manage.py telegram_webhook delete turns the webhook off)",
                    permanent=True,
                ) from exc
            except InvalidToken as exc:
                raise ExternalServiceError("Telegram refused the bot token", permanent=True) from exc
            except (NetworkError, TelegramError) as exc:  # NetworkError covers timeouts
                raise ExternalServiceError(f"Telegram call failed: {exc}") from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    # --- messages ----------------------------------------------------------------------------
    def send_message(
        self, *, chat_id: int, text: str, buttons: Keyboard | None = None, force_reply: bool = False
    ) -> int:
        """Send ``text`` (with inline ``buttons``, or asking for a reply); returns the message id."""
        markup: InlineKeyboardMarkup | ForceReply | None = (
            ForceReply(selective=True) if force_reply else _keyboard(buttons)
        )
        message: Message = self._call(
            chat_id, lambda bot: bot.send_message(chat_id=chat_id, text=text, reply_markup=markup)
        )
        return message.message_id

    def edit_message(
        self, *, chat_id: int, message_id: int, text: str, buttons: Keyboard | None = None
    ) -> None:
        """Replace a message's text and buttons (none: the buttons go)."""
        markup = _keyboard(buttons)
        self._call(
            chat_id,
            lambda bot: bot.edit_message_text(
                chat_id=chat_id, message_id=message_id, text=text, reply_markup=markup
            ),
        )

    def answer_callback(self, *, callback_query_id: str, text: str) -> None:
        """Answer a button tap at once (the client spins until it is answered); ``text`` <= 200."""
        self._call(None, lambda bot: bot.answer_callback_query(callback_query_id, text=text[:200]))

    # --- webhook and polling -----------------------------------------------------------------
    def set_webhook(self, *, url: str, secret_token: str, allowed_updates: list[str]) -> bool:
        return self._call(
            None,
            lambda bot: bot.set_webhook(url=url, secret_token=secret_token, allowed_updates=allowed_updates),
        )

    def webhook_info(self) -> dict:
        return self._call(None, lambda bot: bot.get_webhook_info()).to_dict()

    def delete_webhook(self) -> bool:
        return self._call(None, lambda bot: bot.delete_webhook())

    def get_updates(self, *, offset: int | None, timeout: int, allowed_updates: list[str]) -> list[dict]:
        """Long-poll for updates after ``offset``; returns them as Telegram sent them (dicts)."""
        updates = self._call(
            None,
            lambda bot: bot.get_updates(offset=offset, timeout=timeout, allowed_updates=allowed_updates),
            read_timeout=timeout + settings.TELEGRAM_HTTP_TIMEOUT,
        )
        return [update.to_dict() for update in updates]
