"""A small Telegram Bot API for tests: a real HTTP server on 127.0.0.1 that python-telegram-bot talks
to (``TELEGRAM_API_BASE_URL``), recording every call and enforcing the limits the real API enforces.

It speaks ``/bot<token>/<method>`` for the methods the project uses and answers as Telegram does:
401 for a wrong token; 400 for text over 4096 characters, ``callback_data`` outside 1-64 bytes, a
callback answer over 200 characters, or an edit that changes nothing ("message is not modified");
403 for a chat that blocked the bot; 429 with ``retry_after`` when scripted (``flood``) or when a
chat gets two messages closer than ``chat_interval`` seconds (off unless set). Every answer is
immediate, so a test cannot hang on it.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from django.test import override_settings

TOKEN = "123456:TEST-token-for-the-fake-bot-api"
BOT_USERNAME = "haven_test_bot"
BOT_ID = 123456
TEXT_LIMIT = 4096
# Methods that put something in a chat (and so count towards its flood limit).
CHAT_METHODS = {"sendMessage", "editMessageText"}


@dataclass(frozen=True)
class Call:
    method: str
    params: dict
    at: float


@dataclass
class FakeTelegram:
    token: str = TOKEN
    chat_interval: float = 0.0
    calls: list[Call] = field(default_factory=list)
    blocked_chats: set[int] = field(default_factory=set)
    # chat_id -> message_id -> {"text", "reply_markup"}: what each chat shows now.
    chats: dict[int, dict[int, dict]] = field(default_factory=dict)
    updates: list[dict] = field(default_factory=list)
    webhook: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._floods: list[int] = []
        self._last_in_chat: dict[int, float] = {}
        self._next_message_id = 100
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-telegram",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/bot"

    def start(self) -> "FakeTelegram":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def override_settings(self, **overrides: object) -> override_settings:
        values = {
            "TELEGRAM_BOT_TOKEN": self.token,
            "TELEGRAM_BOT_USERNAME": BOT_USERNAME,
            "TELEGRAM_API_BASE_URL": self.base_url,
            "TELEGRAM_WEBHOOK_SECRET": "webhook-secret-for-tests-0123456789",
            "TELEGRAM_HTTP_TIMEOUT": 5.0,
            "TELEGRAM_CHAT_INTERVAL": 0.01,
            "OUTBOX_SENDERS": {"sms": "ussd.senders.send_sms", "telegram": "bots.senders.send_telegram"},
            **overrides,
        }
        return override_settings(**values)

    # --- scripting and reading ---------------------------------------------------------------
    def flood(self, retry_after: int = 1) -> None:
        """Answer the next message with 429 Too Many Requests and ``retry_after``."""
        with self._lock:
            self._floods.append(retry_after)

    def sent(self, method: str | None = None, *, chat_id: int | None = None) -> list[Call]:
        """Calls Telegram accepted or refused, in order (``getMe`` left out), filtered."""
        return [
            call
            for call in self.calls
            if call.method != "getMe"
            and (method is None or call.method == method)
            and (chat_id is None or call.params.get("chat_id") == chat_id)
        ]

    def shown(self, chat_id: int, message_id: int) -> dict:
        return self.chats[chat_id][message_id]

    def buttons(self, chat_id: int, message_id: int) -> list[tuple[str, str]]:
        """``(text, callback_data)`` of every inline button the message shows now."""
        markup = self.shown(chat_id, message_id).get("reply_markup") or {}
        return [(b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", []) for b in row]

    def last_message(self, chat_id: int) -> tuple[int, dict]:
        message_id = max(self.chats[chat_id])
        return message_id, self.chats[chat_id][message_id]

    # --- serving -----------------------------------------------------------------------------
    def _respond(self, path: str, params: dict) -> tuple[int, dict]:
        prefix = f"/bot{self.token}/"
        with self._lock:
            if not path.startswith(prefix):
                return 401, _error(401, "Unauthorized")
            method = path[len(prefix) :]
            self.calls.append(Call(method, params, time.monotonic()))
            handler = getattr(self, f"_api_{method}", None)
            if handler is None:
                return 404, _error(404, "Not Found: method not found")
            if method in CHAT_METHODS:
                refused = self._chat_limits(params)
                if refused is not None:
                    return refused
            return handler(params)

    def _chat_limits(self, params: dict) -> tuple[int, dict] | None:
        chat_id = int(params.get("chat_id", 0))
        if chat_id in self.blocked_chats:
            return 403, _error(403, "Forbidden: bot was blocked by the user")
        if self._floods:
            return _flood(self._floods.pop(0))
        now = time.monotonic()
        last = self._last_in_chat.get(chat_id)
        self._last_in_chat[chat_id] = now
        if self.chat_interval and last is not None and now - last < self.chat_interval:
            return _flood(1)
        text = params.get("text", "")
        if not text.strip():
            return 400, _error(400, "Bad Request: message text is empty")
        if len(text) > TEXT_LIMIT:
            return 400, _error(400, "Bad Request: message is too long")
        for row in (params.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                if not 1 <= len(button.get("callback_data", "").encode()) <= 64:
                    return 400, _error(400, "Bad Request: BUTTON_DATA_INVALID")
        return None

    def _api_getMe(self, params: dict) -> tuple[int, dict]:
        return 200, _ok(
            {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Haven",
                "username": BOT_USERNAME,
                "can_join_groups": False,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        )

    def _api_sendMessage(self, params: dict) -> tuple[int, dict]:
        chat_id = int(params["chat_id"])
        self._next_message_id += 1
        shown = {"text": params["text"], "reply_markup": params.get("reply_markup")}
        self.chats.setdefault(chat_id, {})[self._next_message_id] = shown
        return 200, _ok(_message(chat_id, self._next_message_id, shown))

    def _api_editMessageText(self, params: dict) -> tuple[int, dict]:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        current = self.chats.get(chat_id, {}).get(message_id)
        if current is None:
            return 400, _error(400, "Bad Request: message to edit not found")
        new = {"text": params["text"], "reply_markup": params.get("reply_markup")}
        if new["text"] == current["text"] and (new["reply_markup"] or None) == (
            current["reply_markup"] or None
        ):
            return 400, _error(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message",
            )
        self.chats[chat_id][message_id] = new
        return 200, _ok(_message(chat_id, message_id, new))

    def _api_answerCallbackQuery(self, params: dict) -> tuple[int, dict]:
        if len(params.get("text", "")) > 200:
            return 400, _error(400, "Bad Request: MESSAGE_TOO_LONG")
        return 200, _ok(True)

    def _api_setWebhook(self, params: dict) -> tuple[int, dict]:
        self.webhook = params
        return 200, _ok(True)

    def _api_deleteWebhook(self, params: dict) -> tuple[int, dict]:
        self.webhook = {}
        return 200, _ok(True)

    def _api_getWebhookInfo(self, params: dict) -> tuple[int, dict]:
        info = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
        if self.webhook.get("allowed_updates"):
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return 200, _ok(info)

    def _api_getUpdates(self, params: dict) -> tuple[int, dict]:
        if self.webhook.get("url"):
            return 409, _error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        pending = [u for u in self.updates if u["update_id"] >= offset]
        return 200, _ok(pending)


def _ok(result: object) -> dict:
    return {"ok": True, "result": result}


def _error(code: int, description: str) -> dict:
    return {"ok": False, "error_code": code, "description": description}


def _flood(retry_after: int) -> tuple[int, dict]:
    body = _error(429, f"Too Many Requests: retry after {retry_after}")
    body["parameters"] = {"retry_after": retry_after}
    return 429, body


def _message(chat_id: int, message_id: int, shown: dict) -> dict:
    message = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private"},
        "from": {"id": BOT_ID, "is_bot": True, "first_name": "Haven", "username": BOT_USERNAME},
        "text": shown["text"],
    }
    if shown.get("reply_markup") and "inline_keyboard" in shown["reply_markup"]:
        message["reply_markup"] = shown["reply_markup"]
    return message


def _decode(raw: str, content_type: str) -> dict:
    # python-telegram-bot posts form fields, each non-string value JSON-encoded.
    if content_type.startswith("application/json"):
        return json.loads(raw or "{}")
    params: dict = {}
    for key, values in parse_qs(raw, keep_blank_values=True).items():
        value = values[0]
        if key in ("text", "url", "secret_token", "callback_query_id"):
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def _handler_for(fake: FakeTelegram) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 5

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            status, body = fake._respond(self.path, _decode(raw, self.headers.get("Content-Type", "")))
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(name="fake_telegram")
def fake_telegram_fixture():
    """A running fake Bot API server; stopped after the test."""
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


@pytest.fixture(name="telegram")
def telegram_fixture(fake_telegram):
    """The fake, with settings pointing the bot (token, base URL, outbox sender) at it."""
    with fake_telegram.override_settings():
        yield fake_telegram
