"""/metrics: who may read it, the outbox's figures, and counts added up across processes."""

import os
import stat
import tempfile

import pytest
from django.test import override_settings

from config.metrics_dir import metrics_dir_prepare
from core.models import OutboxMessage
from core.services.outbox import outbox_deliver, outbox_queue
from tests.metrics import TOKEN, counting_process, process_end, scrape, value

pytestmark = pytest.mark.django_db

with_token = override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_IPS=[])


@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_IPS=[])
def test_without_a_token_or_an_allow_list_there_is_no_endpoint(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 404
    assert response.json() == {"detail": "not found"}


@with_token
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-of-the-same-sort-0123", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
)
def test_a_missing_or_wrong_token_is_401(client, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert b"haven_" not in response.content


@with_token
def test_the_token_opens_it(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"# TYPE haven_outbox_waiting gauge" in response.content


@with_token
def test_only_get(client):
    response = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405


@with_token
def test_an_oversized_token_or_body_is_refused_cleanly(client):
    huge = "x" * 100_000
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {huge}").status_code == 401
    response = client.generic(
        "GET", "/metrics", data=huge.encode(), content_type="text/plain", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
    )
    assert response.status_code == 200  # a GET's body is never read


@with_token
def test_scraping_twice_counts_nothing_itself(client):
    first, second = scrape(client), scrape(client)
    counters = {
        key: v for key, v in first.items() if key[0].endswith(("_total", "_count", "_sum", "_bucket"))
    }
    assert counters and all(second[key] == v for key, v in counters.items())


@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_IPS=["10.1.0.0/16", "192.0.2.7"])
@pytest.mark.parametrize(
    ("remote", "status"), [("10.1.200.3", 200), ("192.0.2.7", 200), ("192.0.2.8", 403), ("10.2.0.1", 403)]
)
def test_the_allow_list_takes_addresses_and_networks(client, remote, status):
    assert client.get("/metrics", REMOTE_ADDR=remote).status_code == status


@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_IPS=["192.0.2.7"], TRUSTED_PROXIES=["10.0.0.5"])
def test_forwarded_for_counts_only_from_a_trusted_proxy(client):
    # As for the callbacks: anyone could write any address in X-Forwarded-For.
    spoofed = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="192.0.2.7")
    assert spoofed.status_code == 403
    proxied = client.get("/metrics", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="192.0.2.7")
    assert proxied.status_code == 200


@override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_IPS=["192.0.2.7"])
def test_with_both_set_both_are_needed(client):
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7", **bearer).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.8", **bearer).status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 401


def _failing_sender(message):
    from core.exceptions import ExternalServiceError

    raise ExternalServiceError("gateway timeout", permanent=False)


@with_token
@override_settings(OUTBOX_SENDERS={"sms": "tests.core.test_metrics._failing_sender"})
def test_outbox_waiting_and_failed_deliveries(client, django_capture_on_commit_callbacks):
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):  # delivery is tried on commit, and fails
        outbox_queue(channel="sms", recipient="+254712345678", body="one", dedupe_key="m1")
    outbox_queue(channel="telegram", recipient="12345", body="two")
    OutboxMessage.objects.create(channel="sms", recipient="+254712345679", body="x", status="sent")

    after = scrape(client)
    assert value(after, "haven_outbox_waiting", channel="sms") == 1  # back to pending, for a retry
    assert value(after, "haven_outbox_waiting", channel="telegram") == 1
    failed = value(after, "haven_outbox_failed_total", channel="sms")
    assert failed - value(before, "haven_outbox_failed_total", channel="sms") == 1
    assert value(after, "haven_outbox_failed_total", channel="telegram") == value(
        before, "haven_outbox_failed_total", channel="telegram"
    )

    message = OutboxMessage.objects.get(dedupe_key="m1")
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=message.created_at)
    outbox_deliver(message_id=message.pk)
    again = scrape(client)
    assert value(again, "haven_outbox_failed_total", channel="sms") == failed + 1


# --- several processes ------------------------------------------------------------------------------


@with_token
def test_counts_of_every_process_add_up_in_multiprocess_mode(client, tmp_path, monkeypatch):
    # Two processes (the Celery worker's and gunicorn's, say), both running, count events; a scrape
    # answered by a third one shows the sum of both, not its own counts. Each starts as the
    # Procfile starts the worker: the second must not delete what the first is writing.
    first = counting_process(tmp_path, 3)
    try:
        second = counting_process(tmp_path, 4)
        process_end(second)
    finally:
        process_end(first)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    scraped = scrape(client)
    accepted = {"kind": "confirmation", "outcome": "accepted"}
    assert value(scraped, "haven_callbacks_total", **accepted) == 7
    assert value(scraped, "haven_callback_seconds_count", kind="confirmation") == 7
    assert value(scraped, "haven_callback_seconds_bucket", kind="confirmation", le="0.025") == 7
    assert value(scraped, "haven_callback_seconds_bucket", kind="confirmation", le="0.01") == 0
    assert value(scraped, "haven_outbox_failed_total", channel="telegram") == 2
    # The gauges come from the database whatever the mode.
    assert ("haven_outbox_waiting", frozenset({("channel", "sms")})) in scraped


@with_token
def test_a_start_clears_the_counts_of_the_previous_run(client, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    process_end(counting_process(tmp_path, 5))  # the previous run, ended
    assert value(scrape(client), "haven_callbacks_total", kind="confirmation", outcome="accepted") == 5
    (tmp_path / "counter_old.db").write_bytes(b"")  # no process number: nobody's, and unreadable

    running = counting_process(tmp_path, 2)
    try:
        scraped = scrape(client)
    finally:
        process_end(running)
    assert value(scraped, "haven_callbacks_total", kind="confirmation", outcome="accepted") == 2
    assert value(scraped, "haven_outbox_failed_total", channel="telegram") == 1
    assert not (tmp_path / "counter_old.db").exists()


def test_without_a_directory_set_the_start_uses_one_per_user(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    environ = {"PROMETHEUS_MULTIPROC_DIR": ""}  # set but empty, as .env.example's line

    path = metrics_dir_prepare(environ)

    assert path == tmp_path / f"haven-metrics-{os.getuid()}"
    assert environ == {"PROMETHEUS_MULTIPROC_DIR": str(path)}
    assert path.is_dir() and stat.S_IMODE(path.stat().st_mode) == 0o700
