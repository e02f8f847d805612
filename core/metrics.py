"""Prometheus metrics, scraped at ``/metrics``.

Two kinds of figures, each counted where it can be counted right when the system runs as several
gunicorn and Celery processes:

- **Events** (callbacks answered, payments processed, outbox deliveries that failed) are counters
  and histograms, counted in the process where they happen, in ``REGISTRY``. With the environment
  variable ``PROMETHEUS_MULTIPROC_DIR`` set (before any process starts) every process writes its
  counts to files in that directory and a scrape adds up the files of all of them, whichever
  process answers it (prometheus_client's multiprocess mode; gunicorn.conf.py and config/metrics_dir.py
  set it up as the production processes start). Without it each process keeps its own
  counts and a scrape shows only those of the process that answered it: right for ``runserver`` and
  the embedded default (one process, tasks run in it), wrong under gunicorn with several workers.
- **State** (payments by status, the oldest waiting payment, messages waiting) is read from the
  database when scraped, by collectors that apps register with ``collector_register``: the
  database is the one place every process agrees on, so nothing is counted twice or lost when a
  process restarts.

No label holds anything about a person: labels take values from fixed sets (kinds, outcomes,
statuses, channels) or are the lender's own paybill short code, never a phone number, a name or an
M-Pesa code.
"""

import hmac
import ipaddress
import logging
import os
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from django.http import HttpRequest
from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from core.http import client_ip
from core.models import OutboxMessage

logger = logging.getLogger(__name__)

# The "_created" series double every counter and mean nothing in multiprocess mode (not exported there).
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

OUTBOX_FAILED = Counter(
    "haven_outbox_failed",
    "Outbox delivery attempts that failed (transient or permanent), by channel",
    ["channel"],
    registry=REGISTRY,
)
for _channel in OutboxMessage.Channel.values:
    OUTBOX_FAILED.labels(_channel)  # every series exists from the start, at 0, so rate() sees the first

_collectors: list[Collector] = []


def collector_register(collector: Collector) -> None:
    """Add a collector run at every scrape (state read from the database). Apps call it from their
    ``AppConfig.ready``; registering the same kind of collector twice keeps one."""
    if not any(type(existing) is type(collector) for existing in _collectors):
        _collectors.append(collector)


def multiprocess_dir() -> str:
    """Where the processes write their counts (multiprocess mode), or "" when each keeps its own."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


class _Scrape(Collector):
    """What one scrape shows: the events of every process (or of this one) and the state now."""

    def collect(self) -> Iterator[Metric]:
        path = multiprocess_dir()
        if path:
            yield from MultiProcessCollector(None, path=path).collect()
        else:
            yield from REGISTRY.collect()
        for collector in _collectors:
            yield from collector.collect()


def metrics_exposition() -> bytes:
    """Every metric, in the Prometheus text format."""
    return generate_latest(_Scrape())


def metrics_refusal(request: HttpRequest) -> int | None:
    """Whether ``request`` may read the metrics: ``None`` if so, else the HTTP status to answer.

    With neither ``METRICS_TOKEN`` nor ``METRICS_ALLOWED_IPS`` set the endpoint does not exist (404).
    Each one that is set must be satisfied: the caller's address (``core.http.client_ip``, which
    believes ``X-Forwarded-For`` only from ``TRUSTED_PROXIES``) in one of the allowed networks, else
    403; ``Authorization: Bearer <METRICS_TOKEN>``, compared in constant time, else 401."""
    token: str = settings.METRICS_TOKEN
    allowed: list[str] = settings.METRICS_ALLOWED_IPS
    if not token and not allowed:
        return 404
    if allowed:
        address = client_ip(request)
        if address is None or not any(
            ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
            for network in allowed
        ):
            return 403
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
            return 401
    return None


class OutboxCollector:
    """``haven_outbox_waiting{channel}``: messages not yet delivered (pending or being sent)."""

    def collect(self) -> Iterator[Metric]:
        try:
            waiting = dict(
                OutboxMessage.objects.filter(
                    status__in=[OutboxMessage.Status.PENDING, OutboxMessage.Status.SENDING]
                )
                .values_list("channel")
                .annotate(count=Count("id"))
                .order_by()
            )
        except DatabaseError:
            logger.warning("metrics: the outbox could not be read", exc_info=True)
            return
        gauge = GaugeMetricFamily(
            "haven_outbox_waiting", "Outbox messages not yet delivered, by channel", labels=["channel"]
        )
        for channel in OutboxMessage.Channel.values:
            gauge.add_metric([channel], waiting.get(channel, 0))
        yield gauge
