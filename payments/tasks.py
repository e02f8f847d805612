"""Celery tasks of the M-Pesa engine.

Stored payments are a queue in the database (``status=received``, ordered by ``next_attempt_at``).
After a confirmation commits it rings a doorbell (``core.doorbell``); each drain task claims
payments one by one with ``SKIP LOCKED`` until none is due. A confirmation therefore costs one cache
call, not a task publish, and any number of workers drain side by side. Nothing depends on a
message arriving: the sweeper rings again for anything left due.
"""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from core.queue import Worked, drain
from core.sweep import sweep
from payments.clients.daraja import DarajaError
from payments.models import MpesaConfiguration, MpesaTransaction
from payments.services import TransientProcessingError, transaction_process_batch
from payments.services.doorbell import DOORBELL_KEY, DRAIN_TASK, ring_doorbell
from payments.services.monitoring import ops_checks_run
from payments.services.processing import RETRY
from payments.services.pull import mpesa_pull_transactions
from payments.services.reconciliation import GAPS_FIND_TASK, balance_gaps_find

logger = logging.getLogger(__name__)

# A payment still due this long after arriving lost its ring: the sweeper rings again.
STUCK_AFTER = timedelta(seconds=60)


@shared_task(name=DRAIN_TASK, ignore_result=True)
def drain_received_task() -> int:
    """Process due received payments until none is left (or a batch is done). Returns how many."""
    return drain(
        task=drain_received_task,
        bell=DOORBELL_KEY,
        work=_post_next,
        debounce=settings.PAYMENTS_DOORBELL_DEBOUNCE,
    )


def _post_next() -> Worked | None:
    try:
        done, retry_in = transaction_process_batch()
    except TransientProcessingError:
        # The queue itself could not be read: stop, and come back after the first backoff.
        return Worked(retry_in=RETRY.first.total_seconds(), stop=True, done=0)
    if not done and retry_in is None:
        return None
    # Payments that failed transiently wait for their backoff: come back for them then.
    return Worked(retry_in=retry_in, done=len(done))


@shared_task(name="payments.sweep_received", ignore_result=True)
def sweep_received_task() -> int:
    """Ring for payments stored but still due a minute later (their ring was lost); returns how many."""
    now = timezone.now()
    # Claims end with their lease: nothing to release, only rows whose ring was lost to ring for.
    stuck = sweep(
        due=MpesaTransaction.objects.filter(
            status=MpesaTransaction.Status.RECEIVED,
            next_attempt_at__lte=now,
            received_at__lt=now - STUCK_AFTER,
        ),
        ring=ring_doorbell,
    )
    if stuck:
        logger.warning("sweeper found %s payment(s) still waiting in received; rang", stuck)
    return stuck


@shared_task(name="payments.pull_transactions", ignore_result=True)
def pull_transactions_task() -> int:
    """Pull the last ``MPESA_PULL_HOURS`` of every active paybill (each pull then looks for balance
    gaps); returns how many payments it created. A paybill Daraja refuses is logged (its last pull
    shows why) and the others still run."""
    created = 0
    for config in MpesaConfiguration.objects.filter(is_active=True):
        try:
            created += mpesa_pull_transactions(config=config, hours=settings.MPESA_PULL_HOURS).created
        except DarajaError as exc:
            logger.warning("pull for %s failed: %s", config.business_short_code, exc.detail)
    return created


@shared_task(name=GAPS_FIND_TASK, ignore_result=True)
def balance_gaps_find_task(config_id: int) -> int:
    """Look for balance gaps of one paybill (after a Transaction Status answer recovered a payment);
    returns how many it recorded."""
    config = MpesaConfiguration.objects.filter(pk=config_id).first()
    return len(balance_gaps_find(config=config)) if config is not None else 0


@shared_task(name="payments.ops_check", ignore_result=True)
def ops_check_task() -> int:
    """The operational checks (``payments.services.monitoring``); returns how many incidents changed."""
    return len(ops_checks_run(now=timezone.now()))
