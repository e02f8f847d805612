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

from tests.metrics import TOKEN, counting_process, process_end, samples, value
from tests.payments.conftest import daraja_payload
from tests.processes import clean_environment, stop_process_group

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
START_TIMEOUT = 60


def _environment(database: Path) -> dict[str, str]:
    # Metrics counted beside the database, not in the machine's default directory (gunicorn.conf.py).
    metrics = database.parent / "metrics"
    metrics.mkdir(exist_ok=True)
    return clean_environment(
        DJANGO_DEBUG="true",
        DATABASE_URL=f"sqlite:///{database}",
        LOG_LEVEL="WARNING",
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
    )


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
    for url, _ in _gunicorn_process(env, *args):
        yield url


def _gunicorn_process(env: dict[str, str], *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """gunicorn started as deploy/Procfile starts it, with gunicorn.conf.py: its address and process."""
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
        yield url, server
    finally:
        stop_process_group(server)


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


def post_chunked(served: str, site: dict, chunks: Iterator[bytes]) -> httpx.Response:
    # httpx sends a body given as an iterator with Transfer-Encoding: chunked (no Content-Length).
    return httpx.post(
        f"{served}/payments/c2b/{site['token']}/confirmation/",
        content=chunks,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def test_a_chunked_confirmation_is_read_whole(site, served):
    body = confirmation(site, "CHUNKED001")

    response = post_chunked(served, site, iter([body[:100], body[100:]]))

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
    response = post_chunked(served, site, (b"x" * 1024 for _ in range(80)))

    assert response.status_code == 413
    assert "over the 64 KB limit" in response.json()["ResultDesc"]


# --- Metrics: every worker's counts in each scrape ---------------------------------------------------


def _workers(server: subprocess.Popen) -> set[int]:
    """gunicorn's workers: the master's children (Linux's /proc)."""
    return {int(pid) for pid in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()}


def test_the_counts_of_every_worker_add_up_in_each_scrape(site, tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    process_end(counting_process(metrics, 100))  # a previous run's: gunicorn clears them as it starts
    env = {**site["env"], "PROMETHEUS_MULTIPROC_DIR": str(metrics), "METRICS_TOKEN": TOKEN}
    accepted = {"kind": "confirmation", "outcome": "accepted"}

    def confirm(url: str, trans_id: str) -> None:
        response = httpx.post(
            f"{url}/payments/c2b/{site['token']}/confirmation/",
            content=confirmation(site, trans_id),
            headers={"Content-Type": "application/json", "Connection": "close"},
            timeout=10,
        )
        assert response.json() == {"ResultCode": 0, "ResultDesc": "Success"}

    for url, server in _gunicorn_process(env, "--workers", "2"):
        for number in range(3):
            confirm(url, f"MULTIPROC0{number}")
        # A reload (SIGHUP) replaces every worker: what the old ones counted must still be there,
        # added to what the new ones count.
        old_workers = _workers(server)
        os.kill(server.pid, signal.SIGHUP)
        deadline = time.monotonic() + START_TIMEOUT
        while (_workers(server) & old_workers or len(_workers(server)) != 2) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _workers(server) & old_workers and len(_workers(server)) == 2
        for number in range(4):
            confirm(url, f"MULTIPROC1{number}")

        scrapes = [
            samples(
                httpx.get(
                    f"{url}/metrics",
                    headers={"Authorization": f"Bearer {TOKEN}", "Connection": "close"},
                    timeout=10,
                ).text
            )
            for _ in range(6)
        ]
    # Whichever worker answered: 3 + 4, none of the previous run's 100.
    assert [value(scraped, "haven_callbacks_total", **accepted) for scraped in scrapes] == [7] * 6


# --- Without Redis the cache is shared by every process ----------------------------------------------


def test_without_redis_state_set_in_one_process_is_seen_by_another(site):
    write = "from django.core.cache import cache; cache.set('shared-state', 'set by the first', 60)"
    read = (
        "from django.core.cache import cache; from django.conf import settings; "
        "print(settings.CACHES['default']['BACKEND'], cache.get('shared-state'))"
    )

    manage(site["env"], "shell", "--no-imports", "-c", write)

    assert manage(site["env"], "shell", "--no-imports", "-c", read).strip() == (
        "django.core.cache.backends.db.DatabaseCache set by the first"
    )


def test_without_redis_an_emulator_token_works_on_every_gunicorn_worker(site, served):
    emulator = f"{served}/daraja-emulator"
    token = httpx.get(
        f"{emulator}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=("k", "s"),
        timeout=10,
    ).json()["access_token"]
    registration = {
        "ShortCode": "600984",
        "ResponseType": "Completed",
        "ConfirmationURL": f"{served}/payments/c2b/{site['token']}/confirmation/",
        "ValidationURL": f"{served}/payments/c2b/{site['token']}/validation/",
    }

    # New connections each time, spread over both workers: each must know the token.
    answers = [
        httpx.post(
            f"{emulator}/mpesa/c2b/v2/registerurl",
            json=registration,
            headers={"Authorization": f"Bearer {token}", "Connection": "close"},
            timeout=10,
        )
        for _ in range(12)
    ]

    assert [answer.status_code for answer in answers] == [200] * 12


# --- make run, as a newcomer meets it -----------------------------------------------------------------


def test_make_run_registers_the_demo_paybills_urls_with_the_emulator(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = _environment(tmp_path / "db.sqlite3")
    del env["DJANGO_DEBUG"]  # make run asks for development itself
    # -o: the virtualenv is installed already; never reinstall it from a test.
    run = subprocess.Popen(
        ["make", "-o", ".venv/.installed-stamp", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert run.stdout is not None
        deadline, registered = time.monotonic() + 120, False
        while not registered and time.monotonic() < deadline and run.poll() is None:
            registered = "callback URLs registered with the Daraja emulator" in run.stdout.readline()
        assert registered, "make run did not register the demo paybill's URLs"
        stored = manage(
            {**env, "DJANGO_DEBUG": "true"},
            "shell",
            "--no-imports",
            "-c",
            "from django.core.cache import cache; print(cache.get('daraja-emulator:urls:600984')['confirmation_url'])",
        )
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/payments/c2b/[^/]+/confirmation/\n", stored)
    finally:
        stop_process_group(run)
