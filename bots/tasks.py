"""Celery tasks of the staff bot: handle a stored update, sweep, and the daily digest."""

import datetime
import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from bots.clients.telegram import TelegramClient
from bots.models import TelegramUpdate
from bots.services.alerts import alerts_resolved_elsewhere
from bots.services.digest import digest_queue
from bots.services.updates import HANDLE_UPDATE_TASK, telegram_update_handle

logger = logging.getLogger(__name__)

# An update still "received" this long after arriving lost its task: the sweeper handles it.
STUCK_AFTER = timedelta(seconds=60)


@shared_task(name=HANDLE_UPDATE_TASK, ignore_result=True)
def telegram_update_task(update_pk: int) -> str:
    return telegram_update_handle(update_pk=update_pk, client=TelegramClient())


@shared_task(name="bots.sweep", ignore_result=True)
def sweep_task() -> int:
    """Handle updates whose task was lost, then close alerts resolved elsewhere. Returns how many
    alerts were closed."""
    client = TelegramClient()
    stuck = TelegramUpdate.objects.filter(
        status=TelegramUpdate.Status.RECEIVED, received_at__lt=timezone.now() - STUCK_AFTER
    ).values_list("pk", flat=True)[:100]
    for update_pk in stuck:
        telegram_update_handle(update_pk=update_pk, client=client)
    return alerts_resolved_elsewhere(client=client)


@shared_task(name="bots.daily_digest", ignore_result=True)
def daily_digest_task() -> int:
    """Queue yesterday's digest (Nairobi days) for every linked staff member; returns how many."""
    return len(digest_queue(day=timezone.localdate() - datetime.timedelta(days=1)))
