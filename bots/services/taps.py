"""Button taps and the assign conversation. Every tap is authorised by the Telegram user who tapped
(whatever chat it is in) against a linked, active staff member and, for a loan officer, their
portfolio; refusals are audited like actions. Money moves only through
``payments.services.actions``, with ``Actor.staff``, and an assignment only after its Confirm."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from bots import texts
from bots.clients.telegram import Button, Keyboard, TelegramClient
from bots.models import CallbackAction
from bots.services.alerts import (
    alert_buttons,
    alert_resolve,
    alert_text,
    edit_quietly,
    new_action,
    payment_resolution,
)
from core.actors import Actor
from core.exceptions import HavenError
from core.models import Loan, User
from core.selectors import staff_by_telegram_id
from core.services import audit_record
from payments.models import MpesaTransaction
from payments.services.actions import (
    assignable_loan,
    transaction_assign,
    transaction_mark_reviewed,
    transaction_reprocess,
)

logger = logging.getLogger(__name__)

Verb = CallbackAction.Verb
# Held while one person's final tap runs, so two people confirming at once cannot both act.
ACTING_LOCK_SECONDS = 120
MAX_CANDIDATES = 6
ALREADY_DONE = "Already done."


@dataclass(frozen=True, slots=True)
class Tap:
    query_id: str
    data: str
    telegram_user_id: int
    chat_id: int | None
    message_id: int | None


@dataclass
class TapResult:
    answer: str
    # Telegram calls made after the tap is answered (edits, new messages).
    then: list[Callable[[], object]] = field(default_factory=list)
    # Nothing was done (already done, resolved, busy, not theirs): audited as a refusal.
    refused: bool = False


def tap_handle(*, client: TelegramClient, tap: Tap) -> str:
    """Answer one button tap and do what it names. Returns a short outcome for the update's row."""
    user = staff_by_telegram_id(telegram_user_id=tap.telegram_user_id)
    action = CallbackAction.objects.select_related("alert", "owner").filter(token=tap.data[:32]).first()
    refusal, tx = _refusal(user, action)
    if refusal is not None:
        _audit(user, tap, action, "telegram.tap_refused", refusal)
        client.answer_callback(callback_query_id=tap.query_id, text=refusal)
        return f"refused: {refusal}"
    assert user is not None and action is not None and tx is not None  # noqa: S101 - _refusal said so
    result = _VERBS[action.verb](client, user, action, tx, tap)
    if result.refused:
        _audit(user, tap, action, "telegram.tap_refused", result.answer)
    client.answer_callback(callback_query_id=tap.query_id, text=result.answer)
    for call in result.then:
        call()
    return f"{action.verb}: {result.answer}"


def _refusal(user: User | None, action: CallbackAction | None) -> tuple[str | None, MpesaTransaction | None]:
    if user is None:
        return texts.TAP_STRANGER, None
    if action is None:
        return texts.TAP_INVALID, None
    if action.used_at is not None:
        return texts.fit(
            f"Already done: {action.outcome or 'this button was used'}", texts.ANSWER_LIMIT
        ), None
    if action.alert is not None and action.alert.resolved_at is not None:
        return texts.fit(f"Already resolved. {action.alert.outcome}", texts.ANSWER_LIMIT), None
    if action.expires_at <= timezone.now():
        return texts.TAP_EXPIRED, None
    if action.owner_id is not None and action.owner_id != user.pk:
        return texts.TAP_NOT_YOURS, None
    tx = _visible(user).filter(trans_id=action.trans_id).select_related("reviewed_by").first()
    if tx is None:
        return texts.TAP_OUTSIDE_PORTFOLIO, None
    return None, tx


def _visible(user: User) -> QuerySet[MpesaTransaction]:
    return MpesaTransaction.objects.visible_to(user)


def _audit(user: User | None, tap: Tap, action: CallbackAction | None, what: str, reason: str) -> None:
    actor = Actor.staff(user) if user is not None else Actor.system(f"telegram-user:{tap.telegram_user_id}")
    audit_record(
        action=what,
        actor=actor,
        reason=reason,
        data={
            "telegram_user_id": tap.telegram_user_id,
            "chat_id": tap.chat_id,
            "verb": action.verb if action else "",
            "trans_id": action.trans_id if action else "",
        },
    )


def _use(action: CallbackAction, user: User, outcome: str = "") -> bool:
    """Mark a button used, once: False when another tap got there first."""
    return bool(
        CallbackAction.objects.filter(pk=action.pk, used_at__isnull=True).update(
            used_at=timezone.now(), used_by=user, outcome=outcome
        )
    )


def _resolved_already(
    client: TelegramClient, action: CallbackAction, tx: MpesaTransaction
) -> TapResult | None:
    alert = action.alert
    resolution = payment_resolution(tx, alert.kind) if alert is not None else None
    if alert is None or resolution is None:
        return None
    outcome = texts.resolved_elsewhere(resolution)
    return TapResult(
        texts.fit(f"Already resolved: {resolution}", texts.ANSWER_LIMIT),
        [lambda: alert_resolve(client=client, alert=alert, outcome=outcome)],
        refused=True,
    )


# --- the final taps: reprocess, mark reviewed, confirm an assignment -----------------------------
def _act(
    client: TelegramClient, user: User, action: CallbackAction, tx: MpesaTransaction, tap: Tap
) -> TapResult:
    lock = f"telegram:acting:{tx.trans_id}"
    if not cache.add(lock, user.pk, timeout=ACTING_LOCK_SECONDS):
        return TapResult(texts.TAP_BUSY, refused=True)
    try:
        tx.refresh_from_db()
        already = _resolved_already(client, action, tx)
        if already is not None:
            _use(action, user, already.answer)
            return already
        if not _use(action, user):
            return TapResult(ALREADY_DONE, refused=True)
        actor = Actor.staff(user)
        try:
            if action.verb == Verb.REPROCESS:
                tx = transaction_reprocess(trans_id=tx.trans_id, actor=actor, reason="from Telegram")
                what = f"Reprocessed (now {tx.get_status_display().lower()})"
            elif action.verb == Verb.REVIEW:
                tx = transaction_mark_reviewed(trans_id=tx.trans_id, actor=actor, note="from Telegram")
                what = "Marked reviewed"
            else:
                # The service checks the loan again (it may have left the portfolio since).
                tx = transaction_assign(
                    trans_id=tx.trans_id, loan_number=action.loan_number, actor=actor, reason="from Telegram"
                )
                what = f"Assigned to {action.loan_number}"
        except HavenError as exc:
            failure = texts.fit(
                f"Could not {action.get_verb_display().lower()}: {exc.detail}", texts.ANSWER_LIMIT
            )
            # Nothing changed: the button works again (the state may allow it later, e.g. a loan
            # reopened), and the failure is what a tap meanwhile would be told.
            CallbackAction.objects.filter(pk=action.pk).update(used_at=None, used_by=None, outcome=failure)
            _audit(user, tap, action, "telegram.tap_failed", exc.detail)
            return TapResult(failure)
    finally:
        cache.delete(lock)
    outcome = texts.outcome_line(what=what, by=user.get_username(), at=timezone.now())
    CallbackAction.objects.filter(pk=action.pk).update(outcome=outcome)
    return TapResult(texts.fit(outcome, texts.ANSWER_LIMIT), _after(client, action, tx, tap, outcome, user))


def _after(
    client: TelegramClient, action: CallbackAction, tx: MpesaTransaction, tap: Tap, outcome: str, user: User
) -> list[Callable[[], object]]:
    calls: list[Callable[[], object]] = []
    alert = action.alert
    if action.verb == Verb.CONFIRM and tap.chat_id is not None and tap.message_id is not None:
        calls.append(lambda: _edit(client, tap, outcome, None, user))
    if alert is None:
        return calls
    tx = MpesaTransaction.objects.select_related("reviewed_by").get(pk=tx.pk)
    if payment_resolution(tx, alert.kind) is not None:
        calls.append(lambda: alert_resolve(client=client, alert=alert, outcome=outcome))
    elif action.verb != Verb.CONFIRM and tap.chat_id is not None and tap.message_id is not None:
        # Still open (reprocessed and still unmatched): say what happened, with fresh buttons.
        chat_id = tap.chat_id
        calls.append(
            lambda: _edit(
                client,
                tap,
                alert_text(alert=alert, tx=tx, outcome=outcome),
                alert_buttons(alert=alert, tx=tx, chat_id=chat_id),
                user,
            )
        )
    return calls


def _edit(client: TelegramClient, tap: Tap, text: str, buttons: Keyboard | None, user: User) -> bool:
    assert tap.chat_id is not None and tap.message_id is not None  # noqa: S101 - callers check
    return edit_quietly(
        client=client,
        chat_id=tap.chat_id,
        message_id=tap.message_id,
        text=text,
        buttons=buttons,
        user_id=user.pk,
    )


# --- the assign conversation --------------------------------------------------------------------
def _assign(
    client: TelegramClient, user: User, action: CallbackAction, tx: MpesaTransaction, tap: Tap
) -> TapResult:
    already = _resolved_already(client, action, tx)
    if already is not None:
        return already
    chat_id = tap.chat_id
    if chat_id is None:
        return TapResult(texts.TAP_INVALID, refused=True)
    borrower_ids = [pk for pk in (tx.borrower_id, tx.payer_borrower_id) if pk is not None]
    loans = list(
        Loan.objects.visible_to(user)
        .active()
        .with_outstanding()
        .filter(borrower_id__in=borrower_ids)
        .order_by("due_date", "id")[:MAX_CANDIDATES]
    )
    if not loans:
        return TapResult(
            "Reply with the loan number.", [lambda: _ask_for_loan(client, user, action, tx, chat_id)]
        )

    buttons = [
        [
            Button(
                texts.loan_button(loan_number=loan.loan_number, outstanding=loan.outstanding),
                _step(user, action, chat_id, Verb.CHOOSE_LOAN, loan.loan_number),
            )
        ]
        for loan in loans
    ]
    buttons.append(
        [
            Button("Another loan number…", _step(user, action, chat_id, Verb.ASK_LOAN)),
            Button("Cancel", _step(user, action, chat_id, Verb.CANCEL)),
        ]
    )
    text = texts.assign_choose(trans_id=tx.trans_id, amount=tx.amount)
    return TapResult(
        "Choose the loan.", [lambda: client.send_message(chat_id=chat_id, text=text, buttons=buttons)]
    )


def _ask_for_loan(
    client: TelegramClient, user: User, action: CallbackAction, tx: MpesaTransaction, chat_id: int
) -> None:
    text = texts.assign_ask(trans_id=tx.trans_id, amount=tx.amount)
    message_id = client.send_message(chat_id=chat_id, text=text, force_reply=True)
    new_action(
        verb=Verb.ASK_LOAN,
        trans_id=tx.trans_id,
        alert=action.alert,
        chat_id=chat_id,
        owner=user,
        prompt_message_id=message_id,
    )


def _ask_button(
    client: TelegramClient, user: User, action: CallbackAction, tx: MpesaTransaction, tap: Tap
) -> TapResult:
    if tap.chat_id is None or not _use(action, user, "asked for a loan number"):
        return TapResult(ALREADY_DONE, refused=True)
    chat_id = tap.chat_id
    return TapResult(
        "Reply with the loan number.", [lambda: _ask_for_loan(client, user, action, tx, chat_id)]
    )


def _step(user: User, action: CallbackAction, chat_id: int, verb: str, loan_number: str = "") -> str:
    """A button of ``user``'s own assignment of ``action``'s payment (only they may tap it on)."""
    return new_action(
        verb=verb,
        trans_id=action.trans_id,
        alert=action.alert,
        chat_id=chat_id,
        owner=user,
        loan_number=loan_number,
    ).token


def _confirm_keyboard(*, user: User, action: CallbackAction, loan_number: str, chat_id: int) -> Keyboard:
    return [
        [
            Button("Confirm", _step(user, action, chat_id, Verb.CONFIRM, loan_number)),
            Button("Cancel", _step(user, action, chat_id, Verb.CANCEL, loan_number)),
        ]
    ]


def _confirm_text(tx: MpesaTransaction, loan: Loan) -> str:
    return texts.assign_confirm(
        trans_id=tx.trans_id,
        amount=tx.amount,
        loan_number=loan.loan_number,
        borrower=loan.borrower.full_name,
        outstanding=loan.outstanding,
    )


def _assignable(user: User, loan_number: str) -> Loan | str:
    """The loan ``user`` may put a payment on (``assignable_loan``, as every staff channel asks), or
    why not."""
    try:
        return assignable_loan(loan_number=loan_number, actor=Actor.staff(user))
    except HavenError as exc:
        return exc.detail


def _choose(
    client: TelegramClient, user: User, action: CallbackAction, tx: MpesaTransaction, tap: Tap
) -> TapResult:
    loan = _assignable(user, action.loan_number)
    if isinstance(loan, str):
        return TapResult(texts.fit(loan, texts.ANSWER_LIMIT), refused=True)
    if tap.chat_id is None or not _use(action, user, f"chose {loan.loan_number}"):
        return TapResult(ALREADY_DONE, refused=True)
    buttons = _confirm_keyboard(user=user, action=action, loan_number=loan.loan_number, chat_id=tap.chat_id)
    text = _confirm_text(tx, loan)
    return TapResult("Check, then Confirm.", [lambda: _edit(client, tap, text, buttons, user)])


def _cancel(
    client: TelegramClient, user: User, action: CallbackAction, tx: MpesaTransaction, tap: Tap
) -> TapResult:
    CallbackAction.objects.filter(trans_id=action.trans_id, owner=user, used_at__isnull=True).update(
        used_at=timezone.now(), used_by=user, outcome="cancelled"
    )
    calls: list[Callable[[], object]] = []
    if tap.chat_id is not None and tap.message_id is not None:
        calls.append(lambda: _edit(client, tap, texts.TAP_CANCELLED, None, user))
    return TapResult(texts.TAP_CANCELLED, calls)


_VERBS: dict[str, Callable[[TelegramClient, User, CallbackAction, MpesaTransaction, Tap], TapResult]] = {
    Verb.REPROCESS: _act,
    Verb.REVIEW: _act,
    Verb.CONFIRM: _act,
    Verb.ASSIGN: _assign,
    Verb.ASK_LOAN: _ask_button,
    Verb.CHOOSE_LOAN: _choose,
    Verb.CANCEL: _cancel,
}


def loan_reply_handle(
    *, client: TelegramClient, user: User, chat_id: int, text: str, reply_to_message_id: int | None
) -> bool:
    """Take ``text`` as the loan number ``user`` was asked for in this chat, if a question is open;
    answer with a Confirm/Cancel message (or say the loan is not theirs to use). Returns whether a
    question was open."""
    asks = CallbackAction.objects.filter(
        verb=Verb.ASK_LOAN,
        owner=user,
        chat_id=chat_id,
        prompt_message_id__isnull=False,
        used_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).select_related("alert")
    if reply_to_message_id is not None:
        asks = asks.filter(prompt_message_id=reply_to_message_id)
    ask = asks.order_by("-created_at", "-id").first()
    if ask is None:
        return False
    tx = _visible(user).filter(trans_id=ask.trans_id).first()
    loan = _assignable(user, text)
    if tx is None or isinstance(loan, str):
        tap = Tap(
            query_id="",
            data="",
            telegram_user_id=user.telegram_user_id or 0,
            chat_id=chat_id,
            message_id=None,
        )
        _audit(user, tap, ask, "telegram.loan_reply_refused", f"no loan {text[:40]!r} in the portfolio")
        client.send_message(
            chat_id=chat_id,
            text=texts.fit(f"No loan {text.strip()[:40]!r} in your portfolio. Reply to the question again."),
        )
        return True
    if not _use(ask, user, f"answered {loan.loan_number}"):
        return True
    client.send_message(
        chat_id=chat_id,
        text=_confirm_text(tx, loan),
        buttons=_confirm_keyboard(user=user, action=ask, loan_number=loan.loan_number, chat_id=chat_id),
    )
    return True
