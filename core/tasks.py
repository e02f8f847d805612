"""Celery tasks of the core: take ids, call one service."""

from celery import shared_task
from django.utils import timezone

from core.services.outbox import outbox_deliver, outbox_sweep


@shared_task(name="core.outbox_deliver", ignore_result=True)
def outbox_deliver_task(message_id: int) -> None:
    message = outbox_deliver(message_id=message_id)
    if message is not None and message.status == message.Status.PENDING:
        # Retry later; the sweeper also picks it up if this countdown is lost.
        delay = (message.next_attempt_at - timezone.now()).total_seconds()
        outbox_deliver_task.apply_async((message_id,), countdown=max(1, int(delay)))


@shared_task(name="core.outbox_sweep", ignore_result=True)
def outbox_sweep_task() -> int:
    return outbox_sweep()
