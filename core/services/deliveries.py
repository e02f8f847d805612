"""Delivery reports of outgoing SMS: each updates its outbox message, and a number whose messages
keep failing is flagged on the borrower's phone for staff (who can ask for a new number)."""

import logging

from django.db import transaction
from django.utils import timezone

from core.models import BorrowerPhone, OutboxMessage
from core.phones import mask_phone

logger = logging.getLogger(__name__)

FINAL_SUCCESS = "Success"
FINAL_FAILURES = frozenset({"Failed", "Rejected"})
FINAL = FINAL_FAILURES | {FINAL_SUCCESS}
# Final failures in a row after which a number is flagged as failing.
SMS_FAILING_AFTER = 3


def outbox_delivery_report(
    *, provider_id: str, status: str, failure_reason: str = ""
) -> OutboxMessage | None:
    """Record the provider's delivery report ``status`` on the SMS it sent as ``provider_id``.

    Returns the message, or ``None`` when no SMS has that id. A report repeated, or a non-final one
    arriving after the final one, changes nothing. A final failure counts against the recipient's
    number (flagged at ``SMS_FAILING_AFTER`` in a row); a success clears the count and the flag.
    """
    status = status.strip()[:16]
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update()
            .filter(channel=OutboxMessage.Channel.SMS, provider_id=provider_id)
            .first()
        )
        if message is None:
            return None
        previous = message.delivery_status
        if previous == status or (previous in FINAL and status not in FINAL):
            return message
        message.delivery_status = status
        message.delivery_error = failure_reason.strip()[:100]
        message.delivery_reported_at = timezone.now()
        message.save(update_fields=["delivery_status", "delivery_error", "delivery_reported_at"])
        if status in FINAL and previous not in FINAL:
            _count_on_phone(message, failed=status in FINAL_FAILURES)
    return message


def _count_on_phone(message: OutboxMessage, *, failed: bool) -> None:
    phone = BorrowerPhone.objects.select_for_update().filter(number=message.recipient).first()
    if phone is None:
        return
    if not failed:
        phone.delivery_failures, phone.sms_failing_since = 0, None
    else:
        phone.delivery_failures += 1
        if phone.delivery_failures >= SMS_FAILING_AFTER and phone.sms_failing_since is None:
            phone.sms_failing_since = timezone.now()
            logger.warning(
                "SMS to %s failed %s times in a row (%s): number flagged",
                mask_phone(phone.number),
                phone.delivery_failures,
                message.delivery_error or "no reason given",
            )
    phone.save(update_fields=["delivery_failures", "sms_failing_since"])
