"""The outbox: every message to a person is a row first, delivered by its channel afterwards.

A service that has news records it with ``outbox_queue`` inside its own transaction; when that
transaction commits it rings the outbox's doorbell (``core.doorbell``), and drain tasks send due
messages one by one, claimed with ``SKIP LOCKED`` so several workers can send side by side.
``outbox_sweep`` rings again for anything a lost task left behind. The network call to the
provider happens outside any database transaction. Channels register a sender in
``settings.OUTBOX_SENDERS``
(``{"sms": "ussd.senders.send_sms", ...}``): a callable that takes the message and returns the
provider's message id, raising ``ExternalServiceError`` on failure.
"""

import functools
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from core import doorbell
from core.db import column_of, concrete_field, execute_prepared, jsonb_insert_sql, row_json, save_fields
from core.exceptions import ExternalServiceError
from core.metrics import OUTBOX_FAILED
from core.models import Borrower, OutboxMessage, User
from core.queue import WorkQueue, claim_batch
from core.retry import RetryPolicy
from core.sweep import sweep

logger = logging.getLogger(__name__)

# A delivery that failed for a reason that may pass is tried again after 30 s, 1, 2 and 4 minutes
# (never more than 30 minutes apart); five attempts in all.
RETRY = RetryPolicy(first=timedelta(seconds=30), cap=timedelta(minutes=30), max_attempts=5)
MAX_ATTEMPTS = RETRY.max_attempts
STALE_SENDING = timedelta(minutes=5)
# Messages a worker claims at once: they are "sending" from the claim, so the last one's send must
# start well inside STALE_SENDING (a provider call times out long before STALE_SENDING / CLAIM_BATCH).
CLAIM_BATCH = 5
OUTBOX_DOORBELL = "outbox:doorbell"
OUTBOX_DRAIN_TASK = "core.outbox_drain"  # core.tasks.outbox_drain_task


def outbox_queue(
    *,
    channel: str,
    recipient: str,
    body: str,
    dedupe_key: str | None = None,
    borrower: Borrower | None = None,
    user: User | None = None,
    context: dict | None = None,
) -> OutboxMessage | None:
    """Record a message for delivery and enqueue it once the surrounding transaction commits.

    Returns the new row, or ``None`` when a message with the same ``dedupe_key`` was already queued.
    """
    message = OutboxMessage(
        channel=channel,
        recipient=recipient,
        body=body,
        dedupe_key=dedupe_key,
        borrower=borrower,
        user=user,
        context=context or {},
    )
    if not _insert(message):
        return None
    # robust: the message is stored; failing to ring must not fail the caller (the sweeper rings).
    transaction.on_commit(outbox_ring, robust=True)
    return message


def _insert(message: OutboxMessage) -> bool:
    """Store ``message`` unless its ``dedupe_key`` is taken; returns whether it was stored. On
    PostgreSQL one ``INSERT ... ON CONFLICT DO NOTHING`` (every posted payment queues two or three
    messages: a savepoint and an ORM insert each cost more than the statement); elsewhere the ORM
    insert in a savepoint."""
    if connection.vendor != "postgresql":
        try:
            with transaction.atomic():
                message.save(force_insert=True)
        except IntegrityError:
            if message.dedupe_key and OutboxMessage.objects.filter(dedupe_key=message.dedupe_key).exists():
                return False
            raise
        return True
    values = {name: getattr(message, name) for name in _INSERTED}
    columns, row = row_json(OutboxMessage, values)
    with connection.cursor() as cursor:
        execute_prepared(cursor, "haven_outbox_insert", _insert_sql(columns), [row])
        inserted = cursor.fetchone()
    if inserted is None:
        return False
    message.pk, message.created_at = inserted
    message._state.adding, message._state.db = False, connection.alias
    return True


# What a new message is written with (the rest takes its defaults; created_at is the server's now).
_INSERTED = (
    "channel",
    "recipient",
    "body",
    "status",
    "dedupe_key",
    "borrower_id",
    "user_id",
    "context",
    "next_attempt_at",
)


@functools.cache
def _insert_sql(columns: tuple[str, ...]) -> str:
    dedupe_key = connection.ops.quote_name(column_of(concrete_field(OutboxMessage, "dedupe_key")))
    return jsonb_insert_sql(
        OutboxMessage, columns, suffix=f"ON CONFLICT ({dedupe_key}) DO NOTHING RETURNING id, created_at"
    )


def outbox_ring(*, force: bool = False) -> bool:
    """Wake the outbox's drain task (unless a ring is already pending). Returns whether it rang."""
    return doorbell.ring(
        OUTBOX_DOORBELL, OUTBOX_DRAIN_TASK, force=force, debounce=settings.OUTBOX_DOORBELL_DEBOUNCE
    )


QUEUE = WorkQueue(OutboxMessage, ready=OutboxMessage.Status.PENDING)


def _claim(limit: int = 1, *, message_id: int | None = None) -> list[OutboxMessage]:
    # The attempt is counted with the claim, so a worker that dies mid-send has still used one and
    # a message that kills every worker stops after MAX_ATTEMPTS (see outbox_sweep). No lease: a
    # message being sent is marked "sending", and the sweeper releases it STALE_SENDING after its claim.
    # Nor is an exhausted message refused here: outbox_retry gives one more attempt on purpose.
    return claim_batch(
        QUEUE, lease=timedelta(0), limit=limit, pk=message_id, status=OutboxMessage.Status.SENDING
    )


def outbox_deliver_next() -> OutboxMessage | None:
    """Claim the next due message no other worker holds and send it. Returns it (``sent``,
    ``failed``, or back to ``pending`` with a later attempt), or ``None`` when nothing is due."""
    claimed = _claim()
    return _send(claimed[0]) if claimed else None


def outbox_deliver_batch(limit: int = CLAIM_BATCH) -> list[OutboxMessage]:
    """Claim up to ``limit`` due messages at once (one claim instead of one per message) and send
    them one by one, each outcome recorded as soon as it is known. Returns them; empty when nothing
    is due."""
    return [_send(message) for message in _claim(limit)]


def outbox_deliver(*, message_id: int) -> OutboxMessage | None:
    """Send one given message now, if it is pending and due. Returns it, or ``None`` if it was not
    due (already sent, being sent elsewhere, or waiting for its next attempt)."""
    claimed = _claim(message_id=message_id)
    return _send(claimed[0]) if claimed else None


def _send(message: OutboxMessage) -> OutboxMessage:
    """Hand a claimed message to its channel's sender and record the outcome.

    On a transient failure the message goes back to ``pending`` with a later ``next_attempt_at``;
    after ``MAX_ATTEMPTS`` or a permanent failure it is ``failed``.
    """
    # getattr: without the setting every delivery would raise AttributeError and stay "sending".
    senders = getattr(settings, "OUTBOX_SENDERS", {})
    try:
        if message.channel not in senders:
            raise ExternalServiceError(
                f"no sender for channel {message.channel!r} in settings.OUTBOX_SENDERS", permanent=True
            )
        sender = import_string(senders[message.channel])
        message.provider_id = str(sender(message) or "")[:100]
    except (ExternalServiceError, KeyError, ImportError) as exc:
        permanent = not isinstance(exc, ExternalServiceError) or exc.permanent
        OUTBOX_FAILED.labels(message.channel).inc()
        message.last_error = str(getattr(exc, "detail", exc))[:2000]
        if permanent or RETRY.exhausted(message.attempts):
            message.status = OutboxMessage.Status.FAILED
        else:
            message.status = OutboxMessage.Status.PENDING
            message.next_attempt_at = timezone.now() + RETRY.delay(message.attempts)
        logger.warning(
            "outbox message %s via %s failed (attempt %s, %s): %s",
            message.pk,
            message.channel,
            message.attempts,
            message.status,
            message.last_error,
        )
    else:
        message.status = OutboxMessage.Status.SENT
        message.sent_at = timezone.now()
        message.last_error = ""
        logger.info("outbox message %s sent via %s", message.pk, message.channel)
    save_fields(message, ["status", "attempts", "provider_id", "last_error", "next_attempt_at", "sent_at"])
    return message


def outbox_retry(*, message_ids: list[int]) -> list[int]:
    """Put pending and failed messages among ``message_ids`` back in the queue, due now, and enqueue
    their delivery once this commits. Returns the ids requeued; sent messages and ones being sent
    are left alone. A message that had used all its attempts gets one more."""

    retryable = (OutboxMessage.Status.PENDING, OutboxMessage.Status.FAILED)
    with transaction.atomic():
        ids = list(
            OutboxMessage.objects.select_for_update()
            .filter(pk__in=message_ids, status__in=retryable)
            .values_list("pk", flat=True)
        )
        OutboxMessage.objects.filter(pk__in=ids).update(
            status=OutboxMessage.Status.PENDING, next_attempt_at=timezone.now()
        )
        if ids:
            transaction.on_commit(lambda: outbox_ring(force=True), robust=True)
    return ids


def outbox_sweep() -> int:
    """Release messages stuck in ``sending`` (a worker died mid-send) and ring for due pending ones.
    Returns how many are due."""
    stale = OutboxMessage.objects.filter(
        status=OutboxMessage.Status.SENDING, next_attempt_at__lt=timezone.now() - STALE_SENDING
    )
    return sweep(
        due=QUEUE.due(),
        ring=outbox_ring,
        abandoned=stale,
        release={"status": OutboxMessage.Status.PENDING},
        retry=RETRY,
        give_up={
            "status": OutboxMessage.Status.FAILED,
            "last_error": "the worker sending it stopped on the last attempt",
        },
    )


def staff_to_alert(*, officer: User | None = None) -> list[User]:
    """Who hears about a payment problem: the loan officer concerned (if any) and every active admin."""
    admins = User.objects.filter(is_active=True).filter(
        models.Q(role=User.Role.ADMIN) | models.Q(is_superuser=True)
    )
    people = {user.pk: user for user in admins}
    if officer is not None and officer.is_active:
        people.setdefault(officer.pk, officer)
    return list(people.values())


def outbox_queue_for_staff(
    *, users: list[User], body: str, dedupe_key: str, context: dict | None = None
) -> list[OutboxMessage]:
    """Queue ``body`` for each staff member on the channels they can be reached on. Returns the rows
    queued (none for a member with no channel: the staff pages still show the problem)."""
    queued = []
    for user in users:
        for channel, recipient in staff_channels(user):
            message = outbox_queue(
                channel=channel,
                recipient=recipient,
                body=body,
                dedupe_key=f"{dedupe_key}:{channel}:{user.pk}",
                user=user,
                context=context,
            )
            if message is not None:
                queued.append(message)
    return queued


def channel_on(channel: str) -> bool:
    """Whether ``channel`` can deliver: it has a sender in ``settings.OUTBOX_SENDERS``."""
    return channel in getattr(settings, "OUTBOX_SENDERS", {})


def staff_channels(user: User) -> list[tuple[str, str]]:
    """``(channel, recipient)`` pairs a staff member is reached on: their Telegram chat when they linked
    it, still take messages there and the Telegram channel is on (it has a sender); else SMS to their
    phone when set."""
    if channel_on(OutboxMessage.Channel.TELEGRAM) and user.telegram_reachable:
        return [(OutboxMessage.Channel.TELEGRAM, str(user.telegram_chat_id))]
    return [(OutboxMessage.Channel.SMS, user.phone)] if user.phone else []
