"""The project as it is served: a real gunicorn started with the repository's gunicorn.conf.py, and
processes that share state, on a SQLite file of their own (not the test database, which lives in this
process). Each server binds 127.0.0.1 on a port the OS picks and is stopped by the test."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.payments.conftest import daraja_payload

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
START_TIMEOUT = 60


def _environment(database: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_"))
    }
    return env | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_READ_ENV_FILE": "false",
        "DJANGO_DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{database}",
        "LOG_LEVEL": "WARNING",
    }


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    """A migrated SQLite file with a local paybill; its environment and the paybill's callback token."""
    env = _environment(tmp_path_factory.mktemp("served") / "db.sqlite3")
    manage(env, "migrate", "--noinput")
    manage(
        env,
        "setup_mpesa",
        "--environment",
        "local",
        "--consumer-key",
        "k",
        "--consumer-secret",
        "s",
        "--business-short-code",
        "600984",
        "--base-url",
        "http://127.0.0.1",
    )
    token = manage(
        env,
        "shell",
        "--no-imports",
        "-c",
        "from payments.models import MpesaConfiguration as C; print(C.objects.get().callback_token)",
    ).strip()
    return {"env": env, "token": token}


def _gunicorn(env: dict[str, str], *args: str) -> Iterator[str]:
    server = subprocess.Popen(
        [str(GUNICORN), "config.wsgi", "--bind", "127.0.0.1:0", *args],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        assert server.stderr is not None
        while url is None and time.monotonic() < deadline and server.poll() is None:
            line = server.stderr.readline()
            found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        assert url, "gunicorn did not start"
        # Every worker answers before the test starts (one that is still booting would look slow).
        for _ in range(20):
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)


@pytest.fixture(scope="module")
def served(site) -> Iterator[str]:
    """gunicorn as gunicorn.conf.py configures it (workers and threads), two workers."""
    yield from _gunicorn(site["env"], "--workers", "2")


def confirmation(site: dict, trans_id: str) -> bytes:
    return json.dumps(daraja_payload("confirmation_hashed.json", TransID=trans_id), default=str).encode()


def test_slow_clients_do_not_hold_up_a_confirmation(site, served):
    host, port = served.removeprefix("http://").split(":")
    path = f"/payments/c2b/{site['token']}/confirmation/"
    dawdlers = []
    try:
        # Eight clients that send their headers and promise a body that never comes.
        for _ in range(8):
            dawdler = socket.create_connection((host, int(port)), timeout=5)
            dawdler.sendall(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                "Content-Length: 500\r\n\r\n".encode()
            )
            dawdlers.append(dawdler)
        time.sleep(0.5)  # let the workers take them up

        started = time.monotonic()
        response = httpx.post(
            f"{served}{path}",
            content=confirmation(site, "SLOWCLI001"),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        elapsed = time.monotonic() - started
    finally:
        for dawdler in dawdlers:
            dawdler.close()

    assert response.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    assert elapsed < 1.0, f"answered after {elapsed:.2f} s"


def test_a_chunked_confirmation_is_read_whole(site, served):
    body = confirmation(site, "CHUNKED001")

    def chunks():
        yield body[:100]
        yield body[100:]

    response = httpx.post(
        f"{served}/payments/c2b/{site['token']}/confirmation/",
        content=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 200
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    stored = manage(
        site["env"],
        "shell",
        "--no-imports",
        "-c",
        "from payments.models import MpesaTransaction as T; t = T.objects.get(trans_id='CHUNKED001'); "
        "print(t.raw_headers.get('Transfer-Encoding'), len(t.raw_body))",
    ).split()
    assert stored == ["chunked", str(len(body))]


def test_a_chunked_body_over_the_limit_is_refused(site, served):
    def chunks():
        for _ in range(80):
            yield b"x" * 1024

    response = httpx.post(
        f"{served}/payments/c2b/{site['token']}/confirmation/",
        content=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 413
    assert "over the 64 KB limit" in response.json()["ResultDesc"]
