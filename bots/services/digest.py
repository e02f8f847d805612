"""The daily digest (Celery beat, 08:00 Nairobi): yesterday's payments for each linked staff member."""

import datetime

from bots import selectors
from core.models import OutboxMessage
from core.services.outbox import channel_on, outbox_queue


def digest_queue(*, day: datetime.date) -> list[OutboxMessage]:
    """Queue ``day``'s digest to every active staff member linked to the bot and reachable there,
    each over what they may see. Once per person and day (a second run queues nothing). Returns the
    rows queued (none while the bot is off)."""
    if not channel_on(OutboxMessage.Channel.TELEGRAM):
        return []  # the bot is off (no token)
    queued = []
    for user in selectors.digest_recipients():
        text = selectors.day_summary_text(
            user=user, day=day, title=f"Yesterday, {day:%a %d %b %Y}", reconciliation=True
        )
        message = outbox_queue(
            channel=OutboxMessage.Channel.TELEGRAM,
            recipient=str(user.telegram_chat_id),
            body=text,
            dedupe_key=f"telegram-digest:{day.isoformat()}:{user.pk}",
            user=user,
            context={"kind": "digest", "day": day.isoformat()},
        )
        if message is not None:
            queued.append(message)
    return queued
