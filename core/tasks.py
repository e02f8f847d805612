"""Celery tasks of the core: the outbox's drain and sweeper."""

from celery import shared_task
from django.utils import timezone

from core import doorbell
from core.models import OutboxMessage
from core.services.outbox import OUTBOX_DOORBELL, OUTBOX_DRAIN_TASK, outbox_deliver_next, outbox_sweep

# Messages one drain task sends before handing over to a fresh task (keeps tasks short).
DRAIN_BATCH = 200


@shared_task(name=OUTBOX_DRAIN_TASK, ignore_result=True)
def outbox_drain_task() -> int:
    """Send due messages until none is left (or a batch is done). Returns how many were tried."""
    doorbell.rearm(OUTBOX_DOORBELL)
    for tried in range(DRAIN_BATCH):
        message = outbox_deliver_next()
        if message is None:
            return tried
        if message.status == OutboxMessage.Status.PENDING:
            # A transient failure: come back when its backoff is over (the sweeper would, too).
            wait = (message.next_attempt_at - timezone.now()).total_seconds()
            if not outbox_drain_task.request.is_eager:  # in-process, a countdown would loop at once
                outbox_drain_task.apply_async(countdown=max(1, int(wait)))
    outbox_drain_task.delay()
    return DRAIN_BATCH


@shared_task(name="core.outbox_sweep", ignore_result=True)
def outbox_sweep_task() -> int:
    return outbox_sweep()
