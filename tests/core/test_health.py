"""/healthz and /readyz, with the database and Redis really unreachable: a closed port on 127.0.0.1."""

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (taken from the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _FakeRedis(socketserver.StreamRequestHandler):
    """Enough of RESP for a client that connects and pings, as a Redis before 6 answers: no HELLO
    (the client falls back to RESP2), +PONG to PING, +OK to anything else."""

    def handle(self) -> None:
        while True:
            header = self.rfile.readline()
            if not header.startswith(b"*"):
                return
            words = []
            for _ in range(int(header[1:])):
                self.rfile.readline()  # $<length>
                words.append(self.rfile.readline().strip().upper())
            command = words[0] if words else b""
            if command == b"HELLO":
                self.wfile.write(b"-ERR unknown command 'HELLO'\r\n")
            else:
                self.wfile.write(b"+PONG\r\n" if command == b"PING" else b"+OK\r\n")


@pytest.fixture
def fake_redis():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _FakeRedis)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.server_address[1]}/0"
    server.shutdown()
    server.server_close()


def test_healthz_is_cheap_and_ok(client, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_without_redis_configured_checks_the_database_only(client, settings):
    settings.REDIS_URL = ""
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "checks": {"database": "ok"}})


def test_ready_when_redis_answers(client, settings, fake_redis):
    settings.REDIS_URL = fake_redis
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a real Redis: set REDIS_URL")
def test_ready_with_the_real_redis(client, settings):
    settings.REDIS_URL = os.environ["REDIS_URL"]
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_not_ready_when_redis_is_unreachable(client, settings, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    with caplog.at_level("WARNING"):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "unavailable"},
        "failed": ["redis"],
    }
    assert "Redis does not answer" in caplog.text


_PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client()
for path in ("/readyz", "/healthz"):
    try:
        response = client.get(path)
        print(json.dumps([path, response.status_code, json.loads(response.content or b"null")]))
    except Exception as exc:
        print(json.dumps([path, "raised", type(exc).__name__]))
"""


def _probe_process(**env: str) -> list:
    """GET /readyz and /healthz in a fresh process whose settings point at the given services."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_READ_ENV_FILE": "false"}
    environment.pop("REDIS_URL", None)
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]


@pytest.mark.parametrize(
    "database_url",
    [
        pytest.param(f"postgres://postgres@127.0.0.1:{closed_port()}/haven", id="postgresql-closed-port"),
        pytest.param("sqlite:////nonexistent-directory/haven/db.sqlite3", id="sqlite-missing-directory"),
    ],
)
def test_not_ready_when_the_database_is_unreachable(database_url):
    readyz, healthz = _probe_process(DATABASE_URL=database_url)
    assert readyz == [
        "/readyz",
        503,
        {"status": "unavailable", "checks": {"database": "unavailable"}, "failed": ["database"]},
    ]
    assert healthz[0] == "/healthz" and healthz[1] != 200  # liveness fails too, as it should


def test_both_unreachable_are_both_named():
    [readyz, _] = _probe_process(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/haven",
        REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
        CELERY_TASK_ALWAYS_EAGER="true",
    )
    assert readyz[1:] == [
        503,
        {
            "status": "unavailable",
            "checks": {"database": "unavailable", "redis": "unavailable"},
            "failed": ["database", "redis"],
        },
    ]


def _this_runs_database_url() -> str:
    """``DATABASE_URL`` naming the database of this test run (the one pytest-django created)."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(url._replace(path=f"/{connection.settings_dict['NAME']}"))


@pytest.mark.postgres("readiness against the real PostgreSQL and Redis, as in production")
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a real Redis: set REDIS_URL")
def test_ready_on_postgresql_and_redis_and_not_when_redis_is_a_closed_port():
    # Fresh processes configured as in production: PostgreSQL, and Redis as cache and broker.
    database = _this_runs_database_url()
    readyz, healthz = _probe_process(DATABASE_URL=database, REDIS_URL=os.environ["REDIS_URL"])
    assert readyz == ["/readyz", 200, {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}]
    assert healthz == ["/healthz", 200, {"status": "ok"}]

    readyz, healthz = _probe_process(DATABASE_URL=database, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")
    assert readyz == [
        "/readyz",
        503,
        {"status": "unavailable", "checks": {"database": "ok", "redis": "unavailable"}, "failed": ["redis"]},
    ]
    assert healthz == ["/healthz", 200, {"status": "ok"}]  # liveness does not ask Redis
