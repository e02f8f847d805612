"""Celery tasks of the M-Pesa engine: take ids, call one service."""

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from payments.models import MpesaTransaction
from payments.services import TransientProcessingError, transaction_process

logger = logging.getLogger(__name__)

# A payment still "received" this long after arriving lost its task (worker killed, broker down).
STUCK_AFTER = timedelta(seconds=60)
SWEEP_BATCH = 500


@shared_task(
    name="payments.process_transaction",
    ignore_result=True,
    autoretry_for=(TransientProcessingError,),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=4,
)
def process_transaction_task(trans_id: str) -> None:
    transaction_process(trans_id=trans_id)


@shared_task(name="payments.sweep_received", ignore_result=True)
def sweep_received_task() -> int:
    """Re-enqueue payments stored but never processed; returns how many."""
    stuck = list(
        MpesaTransaction.objects.filter(
            status=MpesaTransaction.Status.RECEIVED, received_at__lt=timezone.now() - STUCK_AFTER
        )
        .order_by("received_at")
        .values_list("trans_id", flat=True)[:SWEEP_BATCH]
    )
    for trans_id in stuck:
        process_transaction_task.delay(trans_id)
    if stuck:
        logger.warning("sweeper re-enqueued %s payment(s) stuck in received", len(stuck))
    return len(stuck)
