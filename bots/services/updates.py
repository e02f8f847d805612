"""Inbound Telegram updates: stored once by ``update_id`` before anything is done, then handled in a
Celery task (or by ``manage.py telegram_poll``) with the same handlers."""

import hmac
import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from telegram import Update

from bots.clients.telegram import TelegramClient
from bots.handlers import handle_update
from bots.models import TelegramUpdate
from core.doorbell import task_named
from core.exceptions import ExternalServiceError

logger = logging.getLogger(__name__)

# Real updates are a few kilobytes; anything this big is not one and is not read.
MAX_UPDATE_BYTES = 64 * 1024
HANDLE_UPDATE_TASK = "bots.handle_update"  # bots.tasks.telegram_update_task


@dataclass(frozen=True, slots=True)
class InboundUpdate:
    secret: str
    body: bytes
    headers: dict[str, str]
    source_ip: str | None
    declared_length: int | None = None  # set when the body was over the limit and not read


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict


def _secret_ok(secret: str) -> bool:
    expected = settings.TELEGRAM_WEBHOOK_SECRET
    # No secret configured: the webhook is off (a missing secret must not mean "anyone").
    return bool(expected) and hmac.compare_digest(secret.encode("utf-8"), expected.encode("utf-8"))


def telegram_update_receive(*, inbound: InboundUpdate) -> Answer:
    """Store one webhook POST and enqueue its handling once that commits.

    Returns the HTTP answer: 403 (wrong or missing secret; nothing stored), 413 (too large) or 400
    (not an update), both stored; 200 for a new update (stored, handled in Celery) and for a
    redelivery (counted on the first row, not handled again)."""
    if not _secret_ok(inbound.secret):
        logger.warning("telegram webhook with a wrong or missing secret from %s", inbound.source_ip)
        return Answer(403, {"ok": False, "detail": "wrong secret token"})
    headers = {k: v for k, v in inbound.headers.items() if k.lower() != "x-telegram-bot-api-secret-token"}
    row = TelegramUpdate(source_ip=inbound.source_ip, headers=headers)
    if inbound.declared_length is not None:
        row.status, row.error = (
            TelegramUpdate.Status.OVERSIZED,
            f"body of {inbound.declared_length} bytes not read",
        )
        row.save()
        return Answer(413, {"ok": False, "detail": f"an update is at most {MAX_UPDATE_BYTES} bytes"})
    row.body = inbound.body.decode("utf-8", errors="replace")
    update_id = _update_id(inbound.body)
    if update_id is None:
        row.status, row.error = TelegramUpdate.Status.MALFORMED, "not a JSON object with an integer update_id"
        row.save()
        return Answer(400, {"ok": False, "detail": "not a Telegram update"})
    row.update_id = update_id
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        TelegramUpdate.objects.filter(update_id=update_id).update(redeliveries=models.F("redeliveries") + 1)
        logger.info("telegram update %s delivered again; ignored", update_id)
        return Answer(200, {"ok": True, "duplicate": True})

    # delay_on_commit, made robust: the update is stored, so a broker that cannot take the task is
    # logged and the sweeper handles the update within a minute; answering 500 would only make
    # Telegram send it again.
    def enqueue_handling() -> None:
        task_named(HANDLE_UPDATE_TASK).delay(row.pk)

    transaction.on_commit(enqueue_handling, robust=True)
    return Answer(200, {"ok": True})


def _update_id(body: bytes) -> int | None:
    """The update's id when ``body`` is an update python-telegram-bot can read, else ``None``."""
    try:
        data = json.loads(body)
        update_id = data.get("update_id") if isinstance(data, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            return None
        Update.de_json(data, bot=None)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return update_id


def telegram_update_store_polled(*, data: dict) -> TelegramUpdate | None:
    """Store an update fetched by long polling, like a webhook POST. Returns it, or ``None`` if it was
    stored already."""
    try:
        with transaction.atomic():
            return TelegramUpdate.objects.create(
                update_id=data["update_id"], body=json.dumps(data), headers={"source": "getUpdates"}
            )
    except IntegrityError:
        return None


def telegram_update_claim(*, update_pk: int) -> TelegramUpdate | None:
    """Take a received update for handling (once, whichever task or poller asks first)."""
    claimed = TelegramUpdate.objects.filter(pk=update_pk, status=TelegramUpdate.Status.RECEIVED).update(
        status=TelegramUpdate.Status.PROCESSING
    )
    return TelegramUpdate.objects.get(pk=update_pk) if claimed else None


def telegram_update_finish(*, update: TelegramUpdate, outcome: str, failed: bool = False) -> None:
    update.status = TelegramUpdate.Status.FAILED if failed else TelegramUpdate.Status.PROCESSED
    update.error = outcome[:2000] if failed else ""
    update.processed_at = timezone.now()
    update.save(update_fields=["status", "error", "processed_at"])


def telegram_update_handle(*, update_pk: int, client: TelegramClient) -> str:
    """Handle a stored update once (claimed first, so a second task or the poller skips it) and
    record the outcome on its row. Returns the outcome ("" when it was not ours to handle)."""
    update = telegram_update_claim(update_pk=update_pk)
    if update is None:
        return ""
    try:
        outcome = handle_update(client=client, data=json.loads(update.body))
    except ExternalServiceError as exc:
        logger.warning("telegram update %s: Telegram failed: %s", update.update_id, exc.detail)
        telegram_update_finish(update=update, outcome=exc.detail, failed=True)
        return exc.detail
    except Exception as exc:
        # Not left "processing" for ever: the row says it failed, and the error goes on to Celery's log.
        telegram_update_finish(update=update, outcome=f"{type(exc).__name__}: {exc}", failed=True)
        raise
    telegram_update_finish(update=update, outcome=outcome)
    logger.info("telegram update %s: %s", update.update_id, outcome)
    return outcome
