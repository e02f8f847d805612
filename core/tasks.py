"""Celery tasks of the core: the outbox's drain and sweeper."""

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from core.models import OutboxMessage
from core.queue import Worked, drain
from core.services.outbox import OUTBOX_DOORBELL, OUTBOX_DRAIN_TASK, outbox_deliver_batch, outbox_sweep


@shared_task(name=OUTBOX_DRAIN_TASK, ignore_result=True)
def outbox_drain_task() -> int:
    """Send due messages until none is left (or a batch is done). Returns how many were tried."""
    return drain(
        task=outbox_drain_task,
        bell=OUTBOX_DOORBELL,
        work=_send_next,
        debounce=settings.OUTBOX_DOORBELL_DEBOUNCE,
    )


def _send_next() -> Worked | None:
    messages = outbox_deliver_batch()
    if not messages:
        return None
    # Transient failures: come back when the first backoff is over (the sweeper would, too).
    waits = [
        (message.next_attempt_at - timezone.now()).total_seconds()
        for message in messages
        if message.status == OutboxMessage.Status.PENDING
    ]
    return Worked(retry_in=min(waits) if waits else None, done=len(messages))


@shared_task(name="core.outbox_sweep", ignore_result=True)
def outbox_sweep_task() -> int:
    return outbox_sweep()
