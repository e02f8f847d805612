"""USSD PINs: a keyed hash per borrower, and a lockout kept in the database so that every web process
and every new session sees it.

A 4-digit PIN has 10,000 values: a slow password hash would not protect a leaked table (10,000
guesses are quick whatever the cost) and would slow every USSD answer. The protection is the key
(``USSD_PIN_KEYS``, kept outside the database, newest first so it can rotate) and the lockout: three
wrong PINs lock USSD access for ``LOCK_DURATION``. PINs are never logged or echoed.
"""

import hashlib
import hmac
import itertools
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from core.exceptions import InvalidInput, NotFound
from core.models import Borrower
from core.services import audit_record
from ussd.models import BorrowerPin

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
LOCK_DURATION = timedelta(minutes=30)
PIN_LENGTH = 4
# Refused when a borrower chooses a PIN: the first ones a stranger would try.
_TRIVIAL = {"1234", "4321", "0123", "3210", "1122", "1212", "2580", "0852", "1004", "2000", "6969"}


@dataclass(frozen=True, slots=True)
class PinCheck:
    """The outcome of ``pin_verify``: ``ok``; else how many tries are left, or until when it is locked."""

    ok: bool
    attempts_left: int = 0
    locked_until: datetime | None = None


def _keys() -> list[bytes]:
    keys = [key.encode() for key in settings.USSD_PIN_KEYS if key]
    if not keys:
        raise InvalidInput("USSD_PIN_KEYS is empty: PINs cannot be hashed")
    return keys


def _digest(key: bytes, salt: str, pin: str) -> str:
    return hmac.new(key, f"{salt}:{pin}".encode(), hashlib.sha256).hexdigest()


def pin_is_well_formed(pin: str) -> bool:
    return len(pin) == PIN_LENGTH and pin.isascii() and pin.isdigit()


def pin_is_trivial(pin: str) -> bool:
    """Four equal digits (0000, 1111), a run up or down (1234, 9876) or a common pattern."""
    if len(set(pin)) == 1 or pin in _TRIVIAL:
        return True
    steps = {int(b) - int(a) for a, b in itertools.pairwise(pin)}
    return steps in ({1}, {-1})


def pin_state(*, borrower: Borrower) -> tuple[bool, datetime | None]:
    """Whether the borrower has a PIN, and until when USSD is locked for them (``None`` when it is
    not), in one query."""
    row = BorrowerPin.objects.filter(borrower=borrower).values_list("locked_until", flat=True)
    found = list(row[:1])
    if not found:
        return False, None
    locked_until = found[0]
    return True, locked_until if locked_until is not None and locked_until > timezone.now() else None


def pin_locked_until(*, borrower: Borrower) -> datetime | None:
    """When the borrower's USSD lock ends, or ``None`` when they are not locked out."""
    return pin_state(borrower=borrower)[1]


def pin_set(*, borrower: Borrower, pin: str) -> BorrowerPin:
    """Store ``pin`` (4 digits, not trivial) as the borrower's PIN with a fresh salt, clearing any
    lock. Raises ``InvalidInput`` for a malformed or trivial PIN."""
    if not pin_is_well_formed(pin):
        raise InvalidInput("a PIN is 4 digits")
    if pin_is_trivial(pin):
        raise InvalidInput("this PIN is too easy to guess")
    salt = secrets.token_hex(16)
    record, _ = BorrowerPin.objects.update_or_create(
        borrower=borrower,
        defaults={
            "salt": salt,
            "pin_hash": _digest(_keys()[0], salt, pin),
            "failed_attempts": 0,
            "locked_until": None,
        },
    )
    logger.info("USSD PIN set for borrower %s", borrower.pk)
    return record


def pin_verify(*, borrower: Borrower, pin: str) -> PinCheck:
    """Check ``pin`` against the borrower's PIN under a row lock, so that concurrent sessions count
    every wrong try. A right PIN clears the count (and is re-hashed with the newest key if an older
    one matched); the third wrong one in a row locks USSD access for 30 minutes. While locked nothing
    is checked. Raises ``NotFound`` when the borrower has no PIN yet."""
    now = timezone.now()
    with transaction.atomic():
        record = BorrowerPin.objects.select_for_update().filter(borrower=borrower).first()
        if record is None:
            raise NotFound("this borrower has no PIN yet")
        if record.locked_until is not None and record.locked_until > now:
            return PinCheck(ok=False, locked_until=record.locked_until)
        keys = _keys()
        matched = next(
            (
                index
                for index, key in enumerate(keys)
                if hmac.compare_digest(_digest(key, record.salt, pin), record.pin_hash)
            ),
            None,
        )
        if matched is not None:
            record.failed_attempts, record.locked_until = 0, None
            if matched > 0:  # an older key: move the hash to the newest one
                record.pin_hash = _digest(keys[0], record.salt, pin)
            record.save(update_fields=["failed_attempts", "locked_until", "pin_hash", "updated_at"])
            return PinCheck(ok=True)
        record.failed_attempts += 1
        if record.failed_attempts >= MAX_ATTEMPTS:
            record.failed_attempts, record.locked_until = 0, now + LOCK_DURATION
            logger.warning("USSD locked for borrower %s after %s wrong PINs", borrower.pk, MAX_ATTEMPTS)
        record.save(update_fields=["failed_attempts", "locked_until", "updated_at"])
        if record.locked_until is not None and record.locked_until > now:
            return PinCheck(ok=False, locked_until=record.locked_until)
        return PinCheck(ok=False, attempts_left=MAX_ATTEMPTS - record.failed_attempts)


def pin_reset(*, borrower: Borrower, actor: Actor, reason: str = "") -> bool:
    """Delete the borrower's PIN (and its lock): their next USSD session asks them to create one.
    Audited. Returns whether there was a PIN to reset."""
    with transaction.atomic():
        deleted, _ = BorrowerPin.objects.filter(borrower=borrower).delete()
        audit_record(
            action="ussd.pin_reset",
            actor=actor,
            borrower=borrower,
            reason=reason or "PIN reset by staff",
            data={"had_pin": bool(deleted)},
        )
    return bool(deleted)
