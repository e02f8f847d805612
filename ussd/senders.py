"""The SMS channel's sender for the outbox: ``OUTBOX_SENDERS = {"sms": "ussd.senders.send_sms"}``.

``SMS_BACKEND`` picks where a message goes: ``console`` (the embedded default) prints it to stdout,
``africastalking`` sends it through ``ussd.clients.sms.AfricasTalkingSms``.
"""

import logging
import sys

from django.conf import settings

from core.exceptions import ExternalServiceError
from core.models import OutboxMessage
from core.phones import mask_phone
from ussd.clients.sms import AfricasTalkingSms, is_gsm7, sms_segments

logger = logging.getLogger(__name__)

_africastalking = AfricasTalkingSms()


def send_sms(message: OutboxMessage) -> str:
    """Send one outbox SMS through the backend ``SMS_BACKEND`` names.

    Returns the provider's message id (``console-<id>`` for the console). Raises
    ``ExternalServiceError``, whose ``permanent`` flag says whether sending again can help. A body
    that is not GSM-7 or takes more than one segment is logged as a warning and still sent.
    """
    _warn_if_costly(message)
    backend = getattr(settings, "SMS_BACKEND", "console")
    if backend == "console":
        return _send_to_console(message)
    if backend == "africastalking":
        return _africastalking.send(recipient=message.recipient, body=message.body)
    raise ExternalServiceError(
        f"SMS_BACKEND {backend!r} is not 'console' or 'africastalking'", permanent=True
    )


def _send_to_console(message: OutboxMessage) -> str:
    # The body in full (a developer reads it); the number masked, as everywhere else.
    sys.stdout.write(f"SMS to {mask_phone(message.recipient)}: {message.body}\n")
    sys.stdout.flush()
    return f"console-{message.pk}"


def _warn_if_costly(message: OutboxMessage) -> None:
    segments = sms_segments(message.body)
    if not is_gsm7(message.body):
        # One stray character (a curly quote, a non-breaking space) switches the whole message to
        # UCS-2: 70 characters a segment instead of 160.
        offending = "".join(sorted({char for char in message.body if not is_gsm7(char)}))
        logger.warning(
            "outbox SMS %s is not GSM-7 (characters %r): sent as UCS-2 in %s segment(s)",
            message.pk,
            offending,
            segments,
        )
    elif segments > 1:
        logger.warning("outbox SMS %s takes %s segments", message.pk, segments)
