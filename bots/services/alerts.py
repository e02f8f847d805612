"""Payment alerts in Telegram: one per payment and kind, with buttons whose meaning is stored here,
edited when the payment is resolved (by a tap, or elsewhere: the admin, the API, another person)."""

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from bots import texts
from bots.clients.telegram import Button, Keyboard, TelegramClient
from bots.models import AlertMessage, CallbackAction, PaymentAlert
from core.exceptions import ExternalServiceError
from core.logfilters import mask_phone_numbers
from core.models import OutboxMessage, User
from core.phones import mask_phone
from core.services.staff import user_telegram_mark_unreachable
from payments.models import MpesaTransaction
from payments.services.actions import REPROCESSABLE

logger = logging.getLogger(__name__)

ACTION_LIFETIME = timedelta(hours=48)
# Alerts whose payment is still open after this long are left alone by the sweeper (the staff pages
# and /pending still list the payment).
WATCH_FOR = timedelta(days=14)
Verb = CallbackAction.Verb


def staff_url(name: str, *args: str) -> str:
    """The staff page ``name`` (a URL name) as a full address, for messages."""
    return settings.STAFF_BASE_URL.rstrip("/") + reverse(name, args=args)


def payment_resolution(tx: MpesaTransaction, kind: str) -> str | None:
    """How the payment an alert of ``kind`` is about was resolved, in words, or ``None`` while it
    still needs someone. Read from the payment alone, so it sees what was done anywhere."""
    if tx.status == MpesaTransaction.Status.REVERSED:
        return "the payment was reversed"
    if kind == PaymentAlert.Kind.REVIEW_REQUEST and tx.review_requested_since_reviewed():
        return None  # a review before the borrower asked does not answer them
    if tx.reviewed_at is not None:
        who = tx.reviewed_by.get_username() if tx.reviewed_by else "staff"
        if tx.match_strategy == MpesaTransaction.Strategy.MANUAL:
            loans = ", ".join(
                tx.allocations.filter(reversed_at__isnull=True, loan__isnull=False).values_list(
                    "loan__loan_number", flat=True
                )
            )
            return f"assigned to {loans or 'a loan'} by {who}, {texts.when(tx.reviewed_at)}"
        return f"reviewed by {who}, {texts.when(tx.reviewed_at)}"
    # A credit alert or a borrower's review request is about a posted payment: posting does not end it.
    settled_by_posting = kind not in (PaymentAlert.Kind.CREDIT, PaymentAlert.Kind.REVIEW_REQUEST)
    if settled_by_posting and tx.status == MpesaTransaction.Status.PROCESSED:
        return "the payment was posted"
    return None


def new_action(
    *,
    verb: str,
    trans_id: str,
    alert: PaymentAlert | None,
    chat_id: int | None,
    owner: User | None = None,
    loan_number: str = "",
    prompt_message_id: int | None = None,
) -> CallbackAction:
    # 16 random bytes, URL-safe: 22 characters, far under callback_data's 64 bytes, and unguessable.
    return CallbackAction.objects.create(
        token=secrets.token_urlsafe(16),
        verb=verb,
        trans_id=trans_id,
        alert=alert,
        chat_id=chat_id,
        owner=owner,
        loan_number=loan_number,
        prompt_message_id=prompt_message_id,
        expires_at=timezone.now() + ACTION_LIFETIME,
    )


def alert_buttons(*, alert: PaymentAlert, tx: MpesaTransaction, chat_id: int) -> Keyboard:
    """Fresh buttons for an open alert in one chat (earlier ones there stop working)."""
    CallbackAction.objects.filter(
        alert=alert, chat_id=chat_id, owner__isnull=True, used_at__isnull=True
    ).update(expires_at=timezone.now())
    verbs = []
    if tx.status in REPROCESSABLE:
        verbs.append(Verb.REPROCESS)
    verbs.append(Verb.ASSIGN)
    if tx.reviewed_at is None or tx.review_requested_since_reviewed():
        verbs.append(Verb.REVIEW)
    return [
        [
            Button(
                Verb(verb).label,
                new_action(verb=verb, trans_id=tx.trans_id, alert=alert, chat_id=chat_id).token,
            )
            for verb in verbs
        ]
    ]


def borrower_request(*, alert: PaymentAlert, tx: MpesaTransaction) -> str:
    """What the borrower asked, for a review request's alert (their latest request); ``""`` otherwise."""
    if alert.kind != PaymentAlert.Kind.REVIEW_REQUEST:
        return ""
    request = (
        tx.review_requests.select_related("borrower", "requested_loan").order_by("-created_at", "-id").first()
    )
    if request is None:
        return ""
    return texts.review_request_line(
        borrower=request.borrower.full_name,
        phone=mask_phone(request.phone),
        loan_number=request.requested_loan.loan_number if request.requested_loan else "",
        reason=mask_phone_numbers(request.reason),
        at=request.created_at,
    )


def alert_text(*, alert: PaymentAlert, tx: MpesaTransaction, outcome: str = "") -> str:
    return texts.payment_text(
        title=texts.ALERT_TITLES.get(alert.kind, "Payment"),
        trans_id=tx.trans_id,
        amount=tx.amount,
        paid_at=tx.trans_time,
        payer=", ".join(part for part in (tx.payer_name, tx.msisdn_display) if part),
        # What a payer typed, and the notes that quote it, may hold a phone number: masked, as on the
        # staff pages (a chat is no place for a full number).
        bill_reference=mask_phone_numbers(tx.bill_reference),
        status=tx.get_status_display(),
        notes=[mask_phone_numbers(str(note)) for note in tx.notes],
        url=staff_url("admin_ui:transaction-detail", tx.trans_id),
        outcome=outcome,
        request=borrower_request(alert=alert, tx=tx),
    )


def alert_show(
    *, client: TelegramClient, alert: PaymentAlert, chat_id: int, user: User | None, again: bool = False
) -> str:
    """Put ``alert`` in ``chat_id`` once: a second call for the same chat sends nothing, unless
    ``again`` (someone asked for it: /pending, /find), when it is sent anew and the new message is
    the one edited on resolution. Returns the Telegram message id. Raises ``ExternalServiceError``
    (a first sending's claim is then released, so a retry sends it)."""
    try:
        with transaction.atomic():
            shown = AlertMessage.objects.create(alert=alert, chat_id=chat_id, user=user)
        first = True
    except IntegrityError:
        shown = AlertMessage.objects.get(alert=alert, chat_id=chat_id)
        if not again:
            logger.info("%s already in chat %s (message %s)", alert, chat_id, shown.message_id)
            return str(shown.message_id or "")
        first = False
    tx = MpesaTransaction.objects.select_related("reviewed_by").get(trans_id=alert.trans_id)
    resolution = alert.outcome if alert.resolved_at else payment_resolution(tx, alert.kind)
    try:
        if resolution:
            text, buttons = alert_text(alert=alert, tx=tx, outcome=texts.resolved_elsewhere(resolution)), None
        else:
            text, buttons = alert_text(alert=alert, tx=tx), alert_buttons(alert=alert, tx=tx, chat_id=chat_id)
        shown.message_id = client.send_message(chat_id=chat_id, text=text, buttons=buttons)
    except ExternalServiceError:
        if first:
            shown.delete()
        raise
    shown.save(update_fields=["message_id"])
    return str(shown.message_id)


def alert_for(*, trans_id: str, kind: str) -> PaymentAlert:
    alert, _ = PaymentAlert.objects.get_or_create(trans_id=trans_id, kind=kind)
    return alert


def alert_deliver(*, client: TelegramClient, message: OutboxMessage) -> str | None:
    """The outbox's Telegram alert: the payment's alert of this kind, shown in the recipient's chat.
    Returns the Telegram message id, or ``None`` when no payment has that ``trans_id`` (the caller
    then sends the message's text as it is)."""
    trans_id = message.context["trans_id"]
    if not MpesaTransaction.objects.filter(trans_id=trans_id).exists():
        return None
    alert = alert_for(trans_id=trans_id, kind=message.context["kind"])
    return alert_show(client=client, alert=alert, chat_id=int(message.recipient), user=message.user)


def edit_quietly(
    *,
    client: TelegramClient,
    chat_id: int,
    message_id: int,
    text: str,
    buttons: Keyboard | None = None,
    user_id: int | None = None,
) -> bool:
    """Edit a message the bot sent; a failure is logged, not raised (the action it reports is done).
    A chat that blocked the bot marks its staff member unreachable."""
    try:
        client.edit_message(chat_id=chat_id, message_id=message_id, text=text, buttons=buttons)
    except ExternalServiceError as exc:
        logger.warning("could not edit message %s in chat %s: %s", message_id, chat_id, exc.detail)
        if exc.context.get("blocked") and user_id is not None:
            user_telegram_mark_unreachable(user_id=user_id, chat_id=chat_id)
        return False
    return True


def alert_resolve(*, client: TelegramClient, alert: PaymentAlert, outcome: str) -> bool:
    """Close ``alert`` with ``outcome`` and edit every message carrying it to say so, without
    buttons. Returns False (and edits nothing) when it was already closed."""
    now = timezone.now()
    if not PaymentAlert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
        resolved_at=now, outcome=outcome
    ):
        return False
    CallbackAction.objects.filter(alert=alert, used_at__isnull=True).update(expires_at=now)
    tx = MpesaTransaction.objects.get(trans_id=alert.trans_id)
    text = alert_text(alert=alert, tx=tx, outcome=outcome)
    for shown in alert.messages.all():
        if shown.message_id is None:
            continue  # still being sent: it goes out showing the payment as it is then
        if edit_quietly(
            client=client,
            chat_id=shown.chat_id,
            message_id=shown.message_id,
            text=text,
            user_id=shown.user_id,
        ):
            AlertMessage.objects.filter(pk=shown.pk).update(edited_at=timezone.now())
    return True


def alerts_resolved_elsewhere(*, client: TelegramClient, chunk: int = 500) -> int:
    """Close open alerts whose payment was resolved outside the bot, editing their messages. Returns
    how many were closed. Run every minute by the bot's sweeper (alerts older than ``WATCH_FOR`` are
    left: the staff pages and /pending still list their payments)."""
    open_alerts = PaymentAlert.objects.filter(
        resolved_at__isnull=True, created_at__gte=timezone.now() - WATCH_FOR
    ).order_by("id")
    closed, after = 0, 0
    while batch := list(open_alerts.filter(id__gt=after)[:chunk]):
        after = batch[-1].pk
        payments = {
            tx.trans_id: tx
            for tx in MpesaTransaction.objects.filter(
                trans_id__in={a.trans_id for a in batch}
            ).select_related("reviewed_by")
        }
        for alert in batch:
            tx = payments.get(alert.trans_id)
            resolution = payment_resolution(tx, alert.kind) if tx is not None else None
            if resolution and alert_resolve(
                client=client, alert=alert, outcome=texts.resolved_elsewhere(resolution)
            ):
                closed += 1
    return closed
