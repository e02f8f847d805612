"""The USSD adapter: turns Africa's Talking's ``(sessionId, phoneNumber, text)`` into an answer,
keeping each session's state in the shared cache (Redis in production), bound to the phone number.

``text`` is every input so far joined by ``*``. When it continues the stored state by one input,
that input is stepped; the same ``text`` again (a telco retry) gets the stored answer; any other
``text`` is replayed from the first screen. Side effects (a PIN check, a move, an SMS) are
remembered per session by input position, so a replay or a retry never does one twice.

The session also remembers which inputs were typed at a PIN screen (``pins``, by position), so that
every place what the borrower typed is kept (the raw request, the end-of-session ``input``) masks
exactly those: ``session_pin_inputs``.
"""

import hashlib
import hmac
import logging
import time
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, transaction
from django.utils import timezone

from core.actors import Actor
from core.exceptions import InvalidPhoneNumber
from core.models import Borrower
from core.money import format_money
from core.phones import mask_phone, normalize_phone
from core.services import borrower_update
from core.services.outbox import outbox_queue, outbox_queue_for_staff, staff_to_alert
from payments.services.borrower_moves import borrower_payment_confirm, borrower_payment_move
from ussd import menu
from ussd.clients.sms import gsm7_normalize
from ussd.menu import LoanView, MoveAnswer, PaymentView, Reply
from ussd.models import InboundRequest
from ussd.selectors import borrower_for_channel, loan_views, paybill_number, payment_views
from ussd.services.inbound import inbound_mark
from ussd.services.masking import UNKNOWN, PinInputs, mask_pin_field
from ussd.services.pins import PinCheck, pin_set, pin_state, pin_verify
from ussd.texts import en, sw, texts_for

logger = logging.getLogger(__name__)

SESSION_TTL = 300  # seconds; Africa's Talking ends a session after about 180
LOCK_TTL = 10
LOCK_WAIT = 3.0
READS_TTL = 30  # seconds a session reuses the loans and payments it read


def _key(session_id: str) -> str:
    return f"ussd:session:{hashlib.sha256(session_id.encode()).hexdigest()[:32]}"


def _text_digest(session_id: str, text: str) -> str:
    # The text holds PINs: the cache keeps only a digest of it, keyed with the session.
    return hmac.new(session_id.encode(), text.encode(), hashlib.sha256).hexdigest()


class SessionPort:
    """What the menu may read and do for one borrower, backed by the services. Effects are
    remembered in ``effects`` under the input position that caused them (see the module doc)."""

    def __init__(
        self,
        *,
        borrower: Borrower,
        phone: str,
        session_id: str,
        effects: dict[str, Any],
        reads: dict[str, Any] | None = None,
    ) -> None:
        self.borrower = borrower
        self.phone = phone
        self.session_id = session_id
        self.effects = effects
        self.position = -1
        self.language = borrower.preferred_language
        self.contact = settings.LENDER_CONTACT_PHONE
        # What the menu read, kept with the session for READS_TTL seconds: the next screens of a
        # session usually show the same loans and payments, and reading them again was most of an
        # answer's database work. Any effect (a move, a new PIN) drops them.
        fresh = reads is not None and time.time() - reads.get("at", 0) < READS_TTL
        self.reads: dict[str, Any] = reads if fresh and reads is not None else {"at": time.time()}

    def _once(self, name: str, argument: str, run: Any) -> Any:
        key = hashlib.sha256(f"{self.position}:{name}:{argument}".encode()).hexdigest()[:24]
        if key not in self.effects:
            self.effects[key] = run()
            self.reads = {"at": time.time()}  # what the effect changed is read again
        return self.effects[key]

    # --- reads ------------------------------------------------------------------------------------
    @cached_property
    def paybill(self) -> str:
        return paybill_number()

    @cached_property
    def _pin(self) -> tuple[bool, datetime | None]:
        return pin_state(borrower=self.borrower)

    def has_pin(self) -> bool:
        return self._pin[0]

    def locked_until(self) -> datetime | None:
        return self._pin[1]

    def loans(self) -> list[LoanView]:
        if "loans" not in self.reads:
            self.reads["loans"] = loan_views(borrower=self.borrower)
        return self.reads["loans"]

    def payments(self) -> list[PaymentView]:
        if "payments" not in self.reads:
            self.reads["payments"] = payment_views(borrower=self.borrower)
        return self.reads["payments"]

    def digest(self, pin: str) -> str:
        return _text_digest(self.session_id, f"pin:{pin}")

    # --- effects ----------------------------------------------------------------------------------
    def verify_pin(self, pin: str) -> PinCheck:
        def run() -> dict:
            check = pin_verify(borrower=self.borrower, pin=pin)
            locked = check.locked_until.isoformat() if check.locked_until else None
            return {"ok": check.ok, "left": check.attempts_left, "locked_until": locked}

        done = self._once("verify_pin", self.digest(pin), run)
        locked = datetime.fromisoformat(done["locked_until"]) if done["locked_until"] else None
        return PinCheck(ok=done["ok"], attempts_left=done["left"], locked_until=locked)

    def set_pin(self, pin: str) -> None:
        def run() -> None:
            pin_set(borrower=self.borrower, pin=pin)

        self._once("set_pin", self.digest(pin), run)

    def confirm_payment(self, trans_id: str) -> None:
        def run() -> None:
            borrower_payment_confirm(borrower=self.borrower, phone=self.phone, trans_id=trans_id)

        self._once("confirm", trans_id, run)

    def move_payment(self, trans_id: str, loan_number: str) -> MoveAnswer:
        def run() -> dict:
            outcome = borrower_payment_move(
                borrower=self.borrower, phone=self.phone, trans_id=trans_id, loan_number=loan_number
            )
            return {"result": str(outcome.result), "trans_id": outcome.trans_id or trans_id}

        done = self._once("move", f"{trans_id}:{loan_number}", run)
        return MoveAnswer(result=done["result"], trans_id=done["trans_id"], loan_number=loan_number)

    def send_pay_details(self, loan_number: str) -> None:
        def run() -> None:
            loan = next((loan for loan in self.loans() if loan.loan_number == loan_number), None)
            if loan is None:
                return
            body = texts_for(self.language).SMS_PAY_DETAILS.format(
                paybill=self.paybill, loan=loan.loan_number, outstanding=format_money(loan.outstanding)
            )
            outbox_queue(
                channel="sms",
                recipient=self.phone,
                body=gsm7_normalize(body),
                dedupe_key=f"ussd-pay-details:{self.session_id}:{self.position}"[:128],
                borrower=self.borrower,
            )

        self._once("send_pay_details", loan_number, run)

    def set_language(self, language: str) -> None:
        def run() -> None:
            borrower_update(
                borrower=self.borrower,
                changes={"preferred_language": language},
                actor=Actor.borrower(self.phone),
                reason="chosen on USSD",
            )

        self._once("set_language", language, run)
        self.language = language


def _bilingual(name: str, **values: str) -> str:
    return f"{getattr(en, name).format(**values)}\n{getattr(sw, name).format(**values)}"


def ussd_answer(*, session_id: str, phone: str, service_code: str, text: str) -> str:
    """The answer (``CON ...`` or ``END ...``) to one USSD request. Never raises for a borrower's
    input; an unknown number, an unexpected service code or a session bound to another number gets
    an ``END`` with no data."""
    codes = settings.USSD_SERVICE_CODES
    if codes and service_code.strip() not in codes:
        return _final(Reply(_bilingual("WRONG_SERVICE"), end=True))
    try:
        number = normalize_phone(phone)
    except InvalidPhoneNumber:
        logger.info("USSD from a number that is not a Kenyan mobile: %s", mask_phone(phone))
        return _not_registered()
    with _session_lock(session_id):
        stored = cache.get(_key(session_id))
        if stored is not None and stored.get("phone") != number:
            logger.warning(
                "USSD session %s used from a second number %s", session_id[:12], mask_phone(number)
            )
            return _final(Reply(_bilingual("SESSION_ERROR"), end=True))
        # The session remembers whose it is: later requests load the borrower by id.
        borrower = (
            Borrower.objects.filter(pk=stored["borrower"]).first()
            if stored is not None
            else borrower_for_channel(phone=number)
        )
        if borrower is None:
            logger.info("USSD from unregistered number %s", mask_phone(number))
            return _not_registered()
        return _answer_locked(
            session_id=session_id, phone=number, borrower=borrower, text=text, stored=stored
        )


def _not_registered() -> str:
    return _final(Reply(_bilingual("NOT_REGISTERED", contact=settings.LENDER_CONTACT_PHONE), end=True))


class _session_lock:
    """One request of a session at a time across every process: a telco retry that arrives while
    the first attempt is still running waits for it, then finds its stored answer."""

    def __init__(self, session_id: str) -> None:
        self.key = _key(session_id) + ":lock"
        self.held = False

    def __enter__(self) -> None:
        deadline = time.monotonic() + LOCK_WAIT
        while not (held := cache.add(self.key, 1, timeout=LOCK_TTL)) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.held = bool(held)

    def __exit__(self, *exc_info: object) -> None:
        if self.held:
            cache.delete(self.key)


def _answer_locked(*, session_id: str, phone: str, borrower: Borrower, text: str, stored: dict | None) -> str:
    digest = _text_digest(session_id, text)
    if stored is not None and stored["text"] == digest:
        return stored["answer"]  # a retry of the request just answered: the same answer, nothing done
    inputs = text.split("*") if text else []
    effects = stored["effects"] if stored is not None else {}
    reads = stored.get("reads") if stored is not None else None
    port = SessionPort(borrower=borrower, phone=phone, session_id=session_id, effects=effects, reads=reads)
    previous = _text_digest(session_id, "*".join(inputs[:-1])) if inputs else None
    with transaction.atomic():
        if stored is not None and stored["state"] is not None and stored["text"] == previous:
            port.position = len(inputs) - 1
            # An entry stored before PIN positions were kept vouches for none of its inputs.
            pins = set(stored.get("pins", range(len(inputs) - 1)))
            if menu.is_pin_screen(stored["state"]):
                pins.add(port.position)
            reply, state = menu.step(stored["state"], inputs[-1], port)
        else:
            reply, state, pins = _replay(port, inputs)
    answer = _final(reply)
    cache.set(
        _key(session_id),
        {
            "phone": phone,
            "borrower": borrower.pk,
            "text": digest,
            "count": len(inputs),
            "pins": sorted(pins),
            "answer": answer,
            "state": None if reply.end else state,
            "effects": effects,
            "reads": port.reads,
        },
        timeout=SESSION_TTL,
    )
    return answer


def _replay(port: SessionPort, inputs: list[str]) -> tuple[Reply, dict, set[int]]:
    """Run the menu from its first screen through every input (a new session, or a ``text`` that
    does not continue the stored one). Returns the reply, the state, and the positions of the
    inputs typed at a PIN screen, counting those the menu never read (after an ``END``) as PINs:
    nothing tells what they were."""
    pins = set(range(len(inputs)))
    locked = port.locked_until()
    if locked is not None:
        return menu.locked_reply(language=port.language, locked_until=locked, contact=port.contact), {}, pins
    reply, state = menu.start(port)
    for position, value in enumerate(inputs):
        if reply.end:
            break
        if not menu.is_pin_screen(state):
            pins.discard(position)
        port.position = position
        reply, state = menu.step(state, value, port)
    return reply, state, pins


def _final(reply: Reply) -> str:
    """The reply as Africa's Talking takes it: ``CON ``/``END `` and at most 160 GSM-7 characters."""
    text = gsm7_normalize(reply.text)
    if len(text) > menu.SCREEN_LIMIT:
        logger.error("USSD screen of %s characters cut to %s", len(text), menu.SCREEN_LIMIT)
        text = text[: menu.SCREEN_LIMIT]
    return Reply(text, end=reply.end).render()


def ussd_failure_record(*, request: InboundRequest, error: str) -> None:
    """Keep why answering ``request`` failed and alert admins (once an hour: a broken menu fails
    every session). Raises nothing: it runs while a caller is waiting for an apology."""
    try:
        inbound_mark(request=request, outcome=InboundRequest.Outcome.ERROR, error=error)
        outbox_queue_for_staff(
            users=staff_to_alert(),
            body=f"USSD answers are failing ({error[:200]}). Borrowers get an apology; see the logs.",
            dedupe_key=f"ussd-error:{timezone.now():%Y%m%d%H}",
            context={"kind": "ops", "alert": "ussd_error"},
        )
    except DatabaseError:
        logger.exception("could not record the failure of USSD request %s", request.pk)


def apology() -> str:
    """What a caller sees when answering failed inside: an ``END`` in both languages."""
    return _final(Reply(_bilingual("SESSION_ERROR"), end=True))


def session_pin_inputs(*, session_id: str, typed: str) -> PinInputs:
    """Which inputs of ``typed`` (a USSD ``text`` or an end-of-session ``input``) were typed at a
    PIN screen, as the session's stored state knows them: those of the text it answered last, and
    the one after it (the screen it showed says whether that was a PIN). Inputs it cannot vouch for
    (no session, an expired one, a ``typed`` that does not continue the text it answered) count as
    PINs, so they are masked too."""
    stored = cache.get(_key(session_id))
    if stored is None or "pins" not in stored:
        return UNKNOWN
    inputs = typed.split("*") if typed else []
    count = stored["count"]
    if len(inputs) < count or stored["text"] != _text_digest(session_id, "*".join(inputs[:count])):
        return UNKNOWN
    positions = set(stored["pins"])
    known = count
    if stored["state"] is not None:
        known += 1
        if menu.is_pin_screen(stored["state"]):
            positions.add(count)
    return PinInputs(positions=frozenset(positions), known=known)


def session_pins_masked(body: str, *, field: str) -> str:
    """The form-encoded ``body`` of a USSD request (``field="text"``) or of an end-of-session
    notification (``field="input"``) as it came, but for the inputs typed at a PIN screen, masked
    by what the session knows now (``session_pin_inputs``). A body without a ``sessionId`` gets
    every input masked."""
    form = parse_qs(body, keep_blank_values=True)
    session_id = form.get("sessionId", [""])[0].strip()
    if not session_id:
        return mask_pin_field(body, field=field, pins=UNKNOWN)
    typed = form.get(field, [""])[0]
    return mask_pin_field(body, field=field, pins=session_pin_inputs(session_id=session_id, typed=typed))


def ussd_request_pins_masked(body: str) -> str:
    """The raw form of a USSD request with the PINs in its ``text`` masked."""
    return session_pins_masked(body, field="text")


def session_expects_pin(*, session_id: str) -> bool:
    """Whether the session's current screen asks for a PIN (so a terminal can hide what is typed)."""
    stored = cache.get(_key(session_id))
    return bool(stored and stored["state"] and menu.is_pin_screen(stored["state"]))
