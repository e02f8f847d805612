"""Prometheus metrics of the M-Pesa engine (see ``core.metrics`` for how they are counted and scraped).

Events: ``haven_callbacks_total{kind,outcome}`` and ``haven_callback_seconds{kind}`` (counted in the
callback view: one counter increment and one histogram observation per request, the whole cost on
the hot path), ``haven_payment_processing_seconds{status}`` (counted where processing sets
``processing_ms``). State, read from the database at scrape time: ``haven_payments{status}``,
``haven_oldest_waiting_payment_seconds``, the last pull of each paybill, and what the operational
alerts judge (``payments.services.monitoring``), read as they read it, for the Prometheus rules of
deploy/prometheus: ``haven_confirmation_last_age_seconds{short_code}`` and
``haven_recent_payments{status}``.
"""

import datetime
import logging
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from core.metrics import REGISTRY
from payments.answers import CallbackAnswer
from payments.clients.daraja.errors import PULL_OK
from payments.models import CallbackRequest, MpesaConfiguration, MpesaTransaction
from payments.selectors import confirmation_last_at, payments_recent_by_status

logger = logging.getLogger(__name__)


class Outcome:
    """How a callback was answered: the ``outcome`` label of ``haven_callbacks_total``."""

    ACCEPTED = (
        "accepted"  # acknowledged (ResultCode 0): a validation accepted, a payment stored or re-delivered
    )
    REJECTED = "rejected"  # a validation refused with a C2B error code
    MALFORMED = "malformed"  # unreadable body: 400
    TOO_LARGE = "too_large"  # body over the limit: 413
    REFUSED = "refused"  # source address not on the allow-list: 403
    NOT_FOUND = "not_found"  # unknown callback token: 404
    METHOD_NOT_ALLOWED = "method_not_allowed"  # a GET or other method with a valid token: 405
    ERROR = "error"  # the view raised (a 500)

    ALL = (ACCEPTED, REJECTED, MALFORMED, TOO_LARGE, REFUSED, NOT_FOUND, METHOD_NOT_ALLOWED, ERROR)


_BY_STATUS = {400: Outcome.MALFORMED, 403: Outcome.REFUSED, 413: Outcome.TOO_LARGE}

CALLBACKS = Counter(
    "haven_callbacks",
    "Daraja C2B callbacks answered, by kind (validation, confirmation) and outcome",
    ["kind", "outcome"],
    registry=REGISTRY,
)
CALLBACK_SECONDS = Histogram(
    "haven_callback_seconds",
    "Time to answer a Daraja callback, in the view, by kind",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "haven_payment_processing_seconds",
    "Time to match and post a payment (its processing_ms), by the status it reached",
    ["status"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
for _kind in CallbackRequest.Kind.values:
    CALLBACK_SECONDS.labels(_kind)
    for _outcome in Outcome.ALL:
        CALLBACKS.labels(_kind, _outcome)
for _status in (MpesaTransaction.Status.PROCESSED, MpesaTransaction.Status.UNMATCHED):
    PROCESSING_SECONDS.labels(_status)


def answer_outcome(answer: CallbackAnswer | None) -> str:
    """The ``outcome`` label of a callback's answer (``None``: the token was unknown)."""
    if answer is None:
        return Outcome.NOT_FOUND
    if answer.status == 200:
        return Outcome.ACCEPTED if answer.body.get("ResultCode") in (0, "0") else Outcome.REJECTED
    return _BY_STATUS.get(answer.status, Outcome.ERROR)


def callback_observe(*, kind: str, outcome: str, seconds: float) -> None:
    CALLBACKS.labels(kind, outcome).inc()
    CALLBACK_SECONDS.labels(kind).observe(seconds)


def processing_observe(tx: MpesaTransaction) -> None:
    """Count a payment's processing time; call where its ``processing_ms`` is set."""
    if tx.processing_ms is not None:
        PROCESSING_SECONDS.labels(tx.status).observe(tx.processing_ms / 1000)


# Statuses of haven_payments: the model's, with the received ones split in two.
PROCESSING = "processing"
GAUGE_STATUSES = (*MpesaTransaction.Status.values, PROCESSING)


class PaymentsCollector:
    """The payments' state at scrape time, from the database.

    ``haven_payments{status}``: ``received`` counts payments due for a worker now, ``processing`` the
    received ones a worker has claimed (their lease) or that wait for a retry after a transient
    error (both have ``next_attempt_at`` in the future); the others are the model's statuses.
    ``haven_oldest_waiting_payment_seconds``: the age of the oldest payment still received (0 when
    none), which grows when the worker is down or behind."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        try:
            counts = dict(
                MpesaTransaction.objects.values_list("status").annotate(count=Count("id")).order_by()
            )
            # The received ones again, split, in one statement of their own (the count above may be
            # a moment older): due for a worker, or held by a lease or a retry's backoff.
            received = MpesaTransaction.objects.filter(status=MpesaTransaction.Status.RECEIVED).aggregate(
                due=Count("id", filter=Q(next_attempt_at__lte=now)),
                held=Count("id", filter=Q(next_attempt_at__gt=now)),
                oldest=Min("received_at"),
            )
        except DatabaseError:
            logger.warning("metrics: the payments could not be read", exc_info=True)
            return
        counts[MpesaTransaction.Status.RECEIVED] = received["due"]
        counts[PROCESSING] = received["held"]
        oldest = received["oldest"]
        payments = GaugeMetricFamily(
            "haven_payments", "M-Pesa payments by processing status", labels=["status"]
        )
        for status in GAUGE_STATUSES:
            payments.add_metric([status], counts.get(status, 0))
        yield payments
        yield GaugeMetricFamily(
            "haven_oldest_waiting_payment_seconds",
            "Age of the oldest payment not yet processed (received), 0 when none waits",
            value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        )
        yield from _last_pulls(now)
        yield from _last_confirmations(now)
        yield from _recent_payments(now)


def _last_pulls(now: datetime.datetime) -> Iterator[Metric]:
    """The last Pull Transactions sync of each active paybill: its age, and whether Daraja answered
    with transactions (1000 and other codes: ``ok="false"`` unless 1000). A paybill never pulled has
    no sample, so an alert on the age also needs one on its absence (deploy/prometheus)."""
    try:
        pulls = list(
            MpesaConfiguration.objects.filter(is_active=True, last_pull_at__isnull=False).values_list(
                "business_short_code", "last_pull_at", "last_pull_code"
            )
        )
    except DatabaseError:
        logger.warning("metrics: the last pulls could not be read", exc_info=True)
        return
    age = GaugeMetricFamily(
        "haven_pull_last_age_seconds",
        "Seconds since the last Pull Transactions sync of an active paybill",
        labels=["short_code"],
    )
    code = GaugeMetricFamily(
        "haven_pull_last_ok",
        "1 when the last Pull Transactions sync answered 1000 (transactions listed), else 0",
        labels=["short_code", "code"],
    )
    for short_code, pulled_at, result_code in pulls:
        if pulled_at is None:  # filtered out above; says so to the type checker
            continue
        age.add_metric([short_code], max(0.0, (now - pulled_at).total_seconds()))
        code.add_metric([short_code, result_code or "none"], 1.0 if result_code == PULL_OK else 0.0)
    yield age
    yield code


def _last_confirmations(now: datetime.datetime) -> Iterator[Metric]:
    """Seconds since each active paybill's last confirmation, as the silence alert reads it
    (``confirmation_last_at``; a confirmation request that made no payment counts for
    ``ALERT_SILENCE_MINUTES`` back). A paybill that never received one has no sample. The paybill's
    short code is the only label: it names the lender's paybill, nobody who paid."""
    since = now - datetime.timedelta(minutes=settings.ALERT_SILENCE_MINUTES)
    try:
        last = [
            (config.business_short_code, confirmation_last_at(config=config, since=since))
            for config in MpesaConfiguration.objects.filter(is_active=True).order_by("business_short_code")
        ]
    except DatabaseError:
        logger.warning("metrics: the last confirmations could not be read", exc_info=True)
        return
    age = GaugeMetricFamily(
        "haven_confirmation_last_age_seconds",
        "Seconds since the last M-Pesa confirmation of an active paybill",
        labels=["short_code"],
    )
    for short_code, at in last:
        if at is not None:
            age.add_metric([short_code], max(0.0, (now - at).total_seconds()))
    yield age


def _recent_payments(now: datetime.datetime) -> Iterator[Metric]:
    """The failure-rate alert's figures: the payments of the last 30 minutes (M-Pesa's time), by status."""
    try:
        counts = payments_recent_by_status(now=now)
    except DatabaseError:
        logger.warning("metrics: the recent payments could not be read", exc_info=True)
        return
    recent = GaugeMetricFamily(
        "haven_recent_payments",
        "M-Pesa payments of the last 30 minutes (by M-Pesa's TransTime), by status now",
        labels=["status"],
    )
    for status in MpesaTransaction.Status.values:
        recent.add_metric([status], counts.get(status, 0))
    yield recent
