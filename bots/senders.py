"""The Telegram channel's sender for the outbox: ``OUTBOX_SENDERS["telegram"]`` (registered only when
``TELEGRAM_BOT_TOKEN`` is set).

A staff alert (``context={"kind": unmatched | failed | credit | held | review_request, "trans_id"}``)
becomes the payment's alert with buttons, once per payment, kind and chat; anything else (officer
notes, the digest, operational alerts) is sent as its text. A chat that blocked the bot marks its
staff member unreachable and the message goes to them by SMS instead (when they have a phone).
"""

import logging

from bots import texts
from bots.clients.telegram import TelegramClient
from bots.models import PaymentAlert
from bots.services.alerts import alert_deliver
from core.exceptions import ExternalServiceError
from core.models import OutboxMessage
from core.services.outbox import outbox_queue
from core.services.staff import user_telegram_mark_unreachable

logger = logging.getLogger(__name__)

_client = TelegramClient()


def send_telegram(message: OutboxMessage) -> str:
    """Send one outbox message to the Telegram chat in ``recipient``. Returns the Telegram message id.
    Raises ``ExternalServiceError`` (``permanent`` says whether trying again can help)."""
    context = message.context or {}
    try:
        if context.get("kind") in PaymentAlert.Kind.values and context.get("trans_id"):
            shown = alert_deliver(client=_client, message=message)
            if shown is not None:
                return shown
        return str(_client.send_message(chat_id=int(message.recipient), text=texts.fit(message.body)))
    except ExternalServiceError as exc:
        if exc.context.get("blocked") and message.user is not None:
            _fall_back_to_sms(message)
        raise


def _fall_back_to_sms(message: OutboxMessage) -> None:
    user = message.user
    assert user is not None  # noqa: S101 - the caller checked
    if user_telegram_mark_unreachable(user_id=user.pk, chat_id=int(message.recipient)):
        logger.warning("staff user %s blocked the bot: alerts go by SMS from now on", user.pk)
    if user.phone:
        outbox_queue(
            channel=OutboxMessage.Channel.SMS,
            recipient=user.phone,
            body=message.body,
            dedupe_key=f"telegram-fallback:{message.pk}",
            user=user,
            context=message.context,
        )
