"""A small Africa's Talking SMS API for tests: a real HTTP server on 127.0.0.1 that the official SDK
talks to, recording every request and answering with the shapes Africa's Talking sends.

It speaks ``POST /version1/messaging`` (form-encoded ``username``, ``to``, ``message``, ``from``;
``apiKey`` header), answers 401 to a wrong username or key as Africa's Talking does, and otherwise
answers each request with the next scripted ``Reply`` (a success for the number asked when none is
scripted). Every request is answered within 5 s, so a test cannot hang on it.

Import ``fake_africastalking_fixture`` (the server alone, fixture ``fake_africastalking``) or
``africastalking_fixture`` (the server with settings pointing ``SMS_BACKEND=africastalking`` at it,
fixture ``africastalking``; it needs the other imported too) into a test module to use them.
"""

import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from django.test import override_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "africastalking"
MAX_DELAY_SECONDS = 4.5
INVALID_AUTHENTICATION = "The supplied authentication is invalid"


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body`` None means a success for the number asked; a dict is sent as
    JSON, a str as text/plain. ``delay`` holds the answer back (at most 4.5 s)."""

    status: int = 201
    body: dict | str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class FakeAfricasTalking:
    username: str = "haven-test"
    api_key: str = "atsk_fake_0123456789abcdef"
    requests: list[RecordedRequest] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._script: deque[Reply] = deque()
        self._default: Reply | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            # A short poll keeps stop() (and so each test's teardown) quick.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-africastalking",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeAfricasTalking":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes any handler still holding back a slow answer
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- scripting ---------------------------------------------------------------------------
    def answer(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order."""
        with self._lock:
            self._script.extend(replies)

    def answer_always(self, reply: Reply | None) -> None:
        """Answer every unscripted request with ``reply`` (None: success)."""
        with self._lock:
            self._default = reply

    def answer_fixture(self, name: str, *, status: int = 201) -> dict:
        """Answer the next request with ``tests/fixtures/africastalking/<name>.json``; returns it."""
        body = json.loads((FIXTURES / f"{name}.json").read_text())
        self.answer(Reply(status=status, body=body))
        return body

    def answer_recipient_failure(self, status_code: int, status: str) -> None:
        """The request is accepted, the one recipient refused (e.g. 406 UserInBlacklist)."""
        self.answer(Reply(body=_recipient_failure(status_code, status)))

    def answer_http_error(self, status: int, text: str = "Internal Server Error") -> None:
        self.answer(Reply(status=status, body=text))

    def answer_slowly(self, seconds: float) -> None:
        self.answer(Reply(delay=seconds))

    def override_settings(self, **overrides: object) -> override_settings:
        """Settings that send SMS to this server through the Africa's Talking backend."""
        values = {
            "SMS_BACKEND": "africastalking",
            "AFRICASTALKING_USERNAME": self.username,
            "AFRICASTALKING_API_KEY": self.api_key,
            "AFRICASTALKING_SENDER_ID": "HAVEN",
            "AFRICASTALKING_BASE_URL": self.url,
            "SMS_HTTP_TIMEOUT": 5,
            "OUTBOX_SENDERS": {"sms": "ussd.senders.send_sms"},
            **overrides,
        }
        return override_settings(**values)

    # --- serving -----------------------------------------------------------------------------
    def _respond(self, request: RecordedRequest) -> tuple[Reply, dict | str]:
        with self._lock:
            self.requests.append(request)
            authorised = (
                request.headers.get("apikey") == self.api_key
                and request.form.get("username") == self.username
            )
            if not authorised:
                return Reply(status=401), INVALID_AUTHENTICATION
            if request.path != "/version1/messaging" or request.method != "POST":
                return Reply(status=404), "Not Found"
            reply = self._script.popleft() if self._script else (self._default or Reply())
            if reply.body is not None:
                return reply, reply.body
            message_id = f"ATXid_{uuid.uuid4().hex}"
            self.message_ids.append(message_id)
            return reply, _success(request.form.get("to", ""), message_id)


def _success(number: str, message_id: str) -> dict:
    return {
        "SMSMessageData": {
            "Message": "Sent to 1/1 Total Cost: KES 0.8000",
            "Recipients": [
                {
                    "statusCode": 101,
                    "number": number,
                    "status": "Success",
                    "cost": "KES 0.8000",
                    "messageId": message_id,
                }
            ],
        }
    }


def _recipient_failure(status_code: int, status: str) -> dict:
    return {
        "SMSMessageData": {
            "Message": "Sent to 0/1 Total Cost: 0",
            "Recipients": [
                {
                    "statusCode": status_code,
                    "number": "+254711XXXYYY",
                    "status": status,
                    "cost": "0",
                    "messageId": "None",
                }
            ],
        }
    }


def _handler_for(fake: FakeAfricasTalking) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a client that never finishes its request does not hold a thread

        def do_POST(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            form = {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}
            headers = {key.lower(): value for key, value in self.headers.items()}
            reply, body = fake._respond(RecordedRequest(self.command, self.path, headers, form))
            if reply.delay and fake._stopping.wait(min(reply.delay, MAX_DELAY_SECONDS)):
                return
            if isinstance(body, dict):
                payload, content_type = json.dumps(body).encode(), "application/json"
            else:
                payload, content_type = body.encode(), "text/plain"
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test); nothing to answer

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output quiet

    return Handler


# Named fixtures, so test modules import the functions without their names shadowing the arguments.
@pytest.fixture(name="fake_africastalking")
def fake_africastalking_fixture():
    """A running fake Africa's Talking SMS API; stopped after the test."""
    fake = FakeAfricasTalking().start()
    yield fake
    fake.stop()


@pytest.fixture(name="africastalking")
def africastalking_fixture(fake_africastalking):
    """The fake, with settings sending SMS to it through the Africa's Talking backend."""
    with fake_africastalking.override_settings():
        yield fake_africastalking
