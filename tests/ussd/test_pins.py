"""USSD PINs: keyed hashes with a per-borrower salt, key rotation, the lockout, the staff reset."""

import datetime
import hashlib
import hmac
import logging

import pytest
from django.utils import timezone

from core.actors import Actor
from core.exceptions import InvalidInput, NotFound
from core.models import AuditEvent
from tests.factories import BorrowerFactory
from ussd.models import BorrowerPin
from ussd.services.pins import pin_is_trivial, pin_locked_until, pin_reset, pin_set, pin_verify

pytestmark = pytest.mark.django_db


def test_a_pin_is_stored_as_an_hmac_with_the_newest_key_and_its_own_salt(borrower, settings):
    settings.USSD_PIN_KEYS = ["newest-key", "older-key"]
    other = BorrowerFactory()
    pin_set(borrower=borrower, pin="4829")
    pin_set(borrower=other, pin="4829")
    mine, theirs = BorrowerPin.objects.get(borrower=borrower), BorrowerPin.objects.get(borrower=other)
    expected = hmac.new(b"newest-key", f"{mine.salt}:4829".encode(), hashlib.sha256).hexdigest()
    assert mine.pin_hash == expected
    assert mine.salt != theirs.salt and mine.pin_hash != theirs.pin_hash
    assert "4829" not in mine.pin_hash + mine.salt


def test_a_pin_under_an_older_key_still_works_and_moves_to_the_newest(borrower, settings):
    settings.USSD_PIN_KEYS = ["old-key"]
    pin_set(borrower=borrower, pin="4829")
    settings.USSD_PIN_KEYS = ["new-key", "old-key"]
    assert pin_verify(borrower=borrower, pin="4829").ok
    record = BorrowerPin.objects.get(borrower=borrower)
    assert record.pin_hash == hmac.new(b"new-key", f"{record.salt}:4829".encode(), hashlib.sha256).hexdigest()
    settings.USSD_PIN_KEYS = ["new-key"]  # the old key can go
    assert pin_verify(borrower=borrower, pin="4829").ok
    settings.USSD_PIN_KEYS = ["another-key"]
    assert not pin_verify(borrower=borrower, pin="4829").ok


@pytest.mark.parametrize("pin", ["0000", "1111", "1234", "9876", "4321", "1212"])
def test_trivial_pins_are_refused(borrower, pin):
    assert pin_is_trivial(pin)
    with pytest.raises(InvalidInput):
        pin_set(borrower=borrower, pin=pin)


@pytest.mark.parametrize("pin", ["123", "12345", "12a4", "", "\uff14\uff18\uff12\uff19"])
def test_only_four_ascii_digits_are_a_pin(borrower, pin):
    with pytest.raises(InvalidInput):
        pin_set(borrower=borrower, pin=pin)


def test_three_wrong_pins_lock_for_30_minutes_and_a_right_one_does_not_open_it(borrower, caplog):
    caplog.set_level(logging.DEBUG)
    pin_set(borrower=borrower, pin="4829")
    assert pin_verify(borrower=borrower, pin="1111").attempts_left == 2
    assert pin_verify(borrower=borrower, pin="2222").attempts_left == 1
    locked = pin_verify(borrower=borrower, pin="3333")
    assert not locked.ok and locked.locked_until is not None
    assert (
        datetime.timedelta(minutes=29)
        < locked.locked_until - timezone.now()
        <= datetime.timedelta(minutes=30)
    )
    assert pin_locked_until(borrower=borrower) == locked.locked_until
    assert not pin_verify(borrower=borrower, pin="4829").ok  # still locked, even with the right PIN
    BorrowerPin.objects.filter(borrower=borrower).update(
        locked_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert pin_verify(borrower=borrower, pin="4829").ok
    assert all(pin not in caplog.text for pin in ("4829", "1111", "2222", "3333"))


def test_a_right_pin_clears_the_count_of_wrong_ones(borrower):
    pin_set(borrower=borrower, pin="4829")
    pin_verify(borrower=borrower, pin="1111")
    pin_verify(borrower=borrower, pin="1111")
    assert pin_verify(borrower=borrower, pin="4829").ok
    assert pin_verify(borrower=borrower, pin="1111").attempts_left == 2


def test_verifying_without_a_pin_is_not_found(borrower):
    with pytest.raises(NotFound):
        pin_verify(borrower=borrower, pin="4829")


def test_staff_reset_deletes_the_pin_and_the_lock_and_is_audited(borrower, admin_user):
    pin_set(borrower=borrower, pin="4829")
    for _ in range(3):
        pin_verify(borrower=borrower, pin="1111")
    assert pin_reset(borrower=borrower, actor=Actor.staff(admin_user), reason="lost phone")
    assert not BorrowerPin.objects.filter(borrower=borrower).exists()
    event = AuditEvent.objects.get(action="ussd.pin_reset")
    assert (event.actor_user, event.borrower, event.reason, event.data) == (
        admin_user,
        borrower,
        "lost phone",
        {"had_pin": True},
    )
