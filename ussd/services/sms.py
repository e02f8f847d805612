"""Incoming SMS: keywords in English and Kiswahili, each Africa's Talking ``id`` handled once, the
reply queued in the outbox in the same transaction (one GSM-7 segment)."""

import logging
from dataclasses import dataclass
from types import ModuleType

from django.conf import settings
from django.db import IntegrityError, transaction

from core.models import Borrower, OutboxMessage
from core.money import format_money
from core.phones import mask_phone, try_normalize_phone
from core.services.outbox import outbox_queue
from payments.codes import is_issued_trans_id
from payments.services.borrower_moves import MoveResult, borrower_payment_move
from ussd.clients.sms import gsm7_normalize, sms_segments
from ussd.models import InboundRequest, IncomingSms
from ussd.selectors import borrower_for_channel, loan_views, paybill_number
from ussd.texts import en, sw, texts_for

logger = logging.getLogger(__name__)

KEYWORDS = {
    "BAL": ("balance", "en"),
    "SALIO": ("balance", "sw"),
    "LOANS": ("loans", "en"),
    "MIKOPO": ("loans", "sw"),
    "PAY": ("pay", "en"),
    "LIPA": ("pay", "sw"),
    "MOVE": ("move", "en"),
    "HAMISHA": ("move", "sw"),
    "HELP": ("help", "en"),
    "MSAADA": ("help", "sw"),
}


@dataclass(frozen=True, slots=True)
class Command:
    action: str  # balance, loans, pay, move, help
    language: str | None  # the keyword's language; None for text we do not understand
    arguments: tuple[str, ...] = ()


def parse_command(text: str) -> Command:
    """``" move  qk12ab34cd loan-000102 "`` -> ``Command("move", "en", ("QK12AB34CD", "LOAN-000102"))``.
    Case and spacing do not matter; unknown text is ``help`` with no language."""
    words = text.upper().split()
    if not words or words[0] not in KEYWORDS:
        return Command("help", None)
    action, language = KEYWORDS[words[0]]
    return Command(action, language, tuple(words[1:]))


def _one_segment(head: str, parts: list[str], separator: str = "; ") -> str:
    """``head`` with as many of ``parts`` as fit one GSM-7 segment, and ``+N`` for the rest."""
    text = head.format(lines="", loans="")
    for count in range(len(parts), 0, -1):
        rest = len(parts) - count
        joined = separator.join(parts[:count]) + (f" +{rest}" if rest else "")
        candidate = gsm7_normalize(head.replace("{lines}", joined).replace("{loans}", joined))
        if sms_segments(candidate) == 1 and len(candidate) <= 160:
            return candidate
    return text


def _reply_for(command: Command, borrower: Borrower, phone: str) -> str | None:
    language = command.language or borrower.preferred_language
    t = texts_for(language)
    loans = loan_views(borrower=borrower)
    paybill = paybill_number()
    if command.action == "balance":
        if not loans:
            return t.SMS_NO_LOANS
        lines = [
            t.SMS_BALANCE_LINE.format(
                loan=loan.loan_number,
                outstanding=format_money(loan.outstanding),
                due=loan.due_date.strftime("%d/%m/%Y"),
            )
            for loan in loans
        ]
        return _one_segment(t.SMS_BALANCE, lines)
    if command.action == "loans":
        if not loans:
            return t.SMS_NO_LOANS
        return _one_segment(
            t.SMS_LOANS.replace("{paybill}", paybill), [loan.loan_number for loan in loans], ", "
        )
    if command.action == "pay":
        account = loans[0].loan_number if len(loans) == 1 else t.SMS_PAY_ACCOUNT
        return t.SMS_PAY.format(paybill=paybill, account=account)
    if command.action == "move":
        return _move(command, borrower, phone, t)
    return t.SMS_HELP


def _move(command: Command, borrower: Borrower, phone: str, t: ModuleType) -> str | None:
    arguments = command.arguments
    if not arguments:
        return t.SMS_MOVE_USAGE
    trans_id = arguments[0] if len(arguments) > 1 and is_issued_trans_id(arguments[0]) else None
    loan_number = " ".join(arguments[1:] if trans_id else arguments)
    outcome = borrower_payment_move(
        borrower=borrower, phone=phone, trans_id=trans_id, loan_number=loan_number
    )
    if outcome.result == MoveResult.MOVED:
        return None  # the move's own SMS confirmation is the reply
    template = {
        MoveResult.ALREADY_THERE: t.SMS_MOVE_ALREADY,
        MoveResult.REVIEW: t.SMS_MOVE_REVIEW,
        MoveResult.NO_PAYMENT: t.SMS_MOVE_NO_PAYMENT,
        MoveResult.NOT_YOUR_LOAN: t.SMS_MOVE_NOT_YOUR_LOAN,
    }[outcome.result]
    return template.format(
        code=outcome.trans_id or trans_id or "", loan=outcome.loan_number or loan_number[:20]
    )


def not_registered_reply() -> str:
    """The reply to an unregistered number, with no data: both languages when they fit one segment."""
    contact = settings.LENDER_CONTACT_PHONE
    both = f"{en.SMS_NOT_REGISTERED.format(contact=contact)} {sw.SMS_NOT_REGISTERED.format(contact=contact).removeprefix('HAVEN GRAZURI: ')}"
    return both if len(both) <= 160 else en.SMS_NOT_REGISTERED.format(contact=contact)


def sms_receive(*, request: InboundRequest, form: dict[str, str]) -> IncomingSms | None:
    """Handle one incoming SMS: store it under its Africa's Talking ``id`` and queue the reply, in one
    transaction. Returns the row, or ``None`` when this ``id`` was already handled (a redelivery).
    An error leaves nothing behind, so Africa's Talking's next delivery tries again."""
    provider_id = form["id"].strip()[:100]
    sender = form["from"].strip()
    number = try_normalize_phone(sender)
    command = parse_command(form.get("text", ""))
    try:
        with transaction.atomic():
            borrower = borrower_for_channel(phone=number) if number else None
            incoming = IncomingSms.objects.create(
                provider_id=provider_id,
                phone=number or sender[:32],
                to=form.get("to", "")[:32],
                text=form.get("text", ""),
                keyword=command.action if command.language else "",
                borrower=borrower,
                request=request,
            )
            if number is None:
                return incoming  # a shortcode or a foreign sender: nothing to answer
            body = _reply_for(command, borrower, number) if borrower is not None else not_registered_reply()
            if body is not None:
                incoming.reply = _queue_reply(
                    body=body, phone=number, borrower=borrower, provider_id=provider_id
                )
                incoming.save(update_fields=["reply"])
    except IntegrityError:
        if IncomingSms.objects.filter(provider_id=provider_id).exists():
            logger.info("incoming SMS %s delivered again: already handled", provider_id)
            return None
        raise
    logger.info("incoming SMS %s from %s: %s", provider_id, mask_phone(sender), command.action)
    return incoming


def _queue_reply(
    *, body: str, phone: str, borrower: Borrower | None, provider_id: str
) -> OutboxMessage | None:
    return outbox_queue(
        channel="sms",
        recipient=phone,
        body=gsm7_normalize(body),
        dedupe_key=f"sms-reply:{provider_id}"[:128],
        borrower=borrower,
    )
