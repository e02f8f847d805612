"""Handlers for Telegram updates: plain synchronous functions, run by the Celery task behind the
webhook and by ``manage.py telegram_poll`` alike. They parse the update (python-telegram-bot's
``Update.de_json``), call one service or selector, and reply through ``TelegramClient``."""

import logging
from collections.abc import Callable

from django.utils import timezone
from telegram import Message, Update

from bots import selectors, texts
from bots.clients.telegram import TelegramClient
from bots.models import AlertKind, PaymentAlert
from bots.services.alerts import alert_for, alert_show, alert_text, staff_url
from bots.services.taps import Tap, loan_reply_handle, tap_handle
from core.actors import Actor
from core.exceptions import InvalidInput, NotFound
from core.models import Loan, User
from core.phones import try_normalize_phone
from core.selectors import borrower_get_for_user_by_phone, loan_get_for_user, staff_by_telegram_id
from core.services import audit_record
from core.services.staff import user_telegram_link
from payments.matching import loan_number_candidates
from payments.models import MpesaTransaction

logger = logging.getLogger(__name__)

# The update types the bot reads (setWebhook and getUpdates ask for these only).
ALLOWED_UPDATES = ["message", "callback_query"]
PENDING_SHOWN = 10
Say = Callable[[str], None]
RECENT_PAYMENTS = 5


def handle_update(*, client: TelegramClient, data: dict) -> str:
    """Act on one stored update. Returns a short outcome for its row. Raises ``ExternalServiceError``
    when Telegram cannot be reached."""
    update = Update.de_json(data, bot=None)
    query = update.callback_query
    if query is not None:
        message = query.message
        return tap_handle(
            client=client,
            tap=Tap(
                query_id=query.id,
                data=query.data or "",
                telegram_user_id=query.from_user.id,
                chat_id=message.chat.id if message is not None else None,
                message_id=message.message_id if message is not None else None,
            ),
        )
    message = update.message
    if message is None or message.from_user is None:
        return "ignored: nothing the bot reads"
    if message.chat.type != "private":
        return "ignored: not a private chat"
    return _message(client, message)


def _message(client: TelegramClient, message: Message) -> str:
    assert message.from_user is not None  # noqa: S101 - handle_update checked
    chat_id = message.chat.id
    command, _, argument = (message.text or "").strip().partition(" ")
    command = command.split("@")[0].lower()
    argument = argument.strip()

    def say(text: str) -> None:
        client.send_message(chat_id=chat_id, text=texts.fit(text))

    if command == "/start" and argument:
        return _start(say, code=argument, telegram_user_id=message.from_user.id, chat_id=chat_id)
    user = staff_by_telegram_id(telegram_user_id=message.from_user.id)
    if user is None:
        say(texts.STRANGER)
        return "refused: not linked staff"
    if command in ("/help", "/start"):
        say(texts.HELP)
    elif command == "/pending":
        _pending(client, say, user, chat_id)
    elif command == "/find":
        _find(client, say, user, chat_id, argument)
    elif command == "/stats":
        say(selectors.day_summary_text(user=user, day=timezone.localdate(), title="Today"))
    elif command.startswith("/"):
        say(texts.UNKNOWN)
    else:
        reply_to = message.reply_to_message.message_id if message.reply_to_message else None
        if not loan_reply_handle(
            client=client,
            user=user,
            chat_id=chat_id,
            text=message.text or "",
            reply_to_message_id=reply_to,
        ):
            say(texts.UNKNOWN)
            return "not understood"
        return "loan number reply"
    return command


def _start(say: Say, *, code: str, telegram_user_id: int, chat_id: int) -> str:
    try:
        user = user_telegram_link(code=code, telegram_user_id=telegram_user_id, chat_id=chat_id)
    except InvalidInput as exc:
        audit_record(
            action="staff.telegram_link_refused",
            actor=Actor.system(f"telegram-user:{telegram_user_id}"),
            reason=exc.detail,
            data={"telegram_user_id": telegram_user_id, "chat_id": chat_id},
        )
        say(texts.LINK_FAILED)
        return f"link refused: {exc.detail}"
    say(texts.linked(user.get_full_name() or user.get_username()))
    return f"linked {user.get_username()}"


def _show_open(client: TelegramClient, user: User, chat_id: int, tx: MpesaTransaction) -> None:
    """Show a payment that needs someone as its alert, with buttons (sent anew when asked again)."""
    kinds: dict[str, AlertKind] = {
        MpesaTransaction.Status.FAILED: PaymentAlert.Kind.FAILED,
        MpesaTransaction.Status.HELD: PaymentAlert.Kind.HELD,
    }
    kind = kinds.get(tx.status, PaymentAlert.Kind.UNMATCHED)
    alert_show(
        client=client,
        alert=alert_for(trans_id=tx.trans_id, kind=kind),
        chat_id=chat_id,
        user=user,
        again=True,
    )


def _pending(client: TelegramClient, say: Say, user: User, chat_id: int) -> None:
    pending = selectors.pending_for(user)
    shown = list(pending[:PENDING_SHOWN])
    if not shown:
        say(texts.NOTHING_PENDING)
        return
    for tx in shown:
        _show_open(client, user, chat_id, tx)
    more = pending.count() - len(shown)
    if more > 0:
        say(f"…and {more} more: {staff_url('admin_ui:transaction-list')}")


def _find(client: TelegramClient, say: Say, user: User, chat_id: int, query: str) -> None:
    if not query:
        say(texts.FIND_USAGE)
        return
    visible = MpesaTransaction.objects.visible_to(user)
    tx = visible.filter(trans_id=query.upper()).first()
    if tx is not None:
        if tx in selectors.pending_for(user):
            _show_open(client, user, chat_id, tx)
        else:
            say(alert_text(alert=PaymentAlert(kind="", trans_id=tx.trans_id), tx=tx))
        return
    lines: list[str] = []
    try:
        if try_normalize_phone(query) is not None:
            borrower = borrower_get_for_user_by_phone(phone=query, user=user)
            lines = [borrower.full_name, *(_loan_line(loan) for loan in borrower.visible_loans)]
            payments = visible.filter(borrower=borrower)
        else:
            loan = next(
                (loan for number in loan_number_candidates(query) if (loan := _loan_or_none(number, user))),
                None,
            )
            if loan is None:
                raise NotFound(query)
            lines = [_loan_line(loan)]
            payments = visible.filter(borrower_id=loan.borrower_id)
    except (NotFound, InvalidInput):
        say(texts.NOT_FOUND)
        return
    lines += [
        f"{p.trans_id}: {texts.kes(p.amount)} {texts.when(p.trans_time)} ({p.get_status_display().lower()})"
        for p in payments.order_by("-trans_time")[:RECENT_PAYMENTS]
    ]
    say("\n".join(lines))


def _loan_or_none(number: str, user: User) -> Loan | None:
    try:
        return loan_get_for_user(loan_number=number, user=user)
    except NotFound:
        return None


def _loan_line(loan: Loan) -> str:
    return texts.loan_text(
        loan_number=loan.loan_number,
        borrower=loan.borrower.full_name,
        status=loan.get_status_display().lower(),
        outstanding=loan.outstanding,
        due=loan.due_date,
    )
