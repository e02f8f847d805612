"""A queue's sweeper (core.sweep): releasing what a dead worker left, giving up its last attempt, and
ringing for what is due. The outbox's rows serve as the queue here; tests/core/test_outbox.py and
tests/payments/test_processing.py cover each queue's own sweeper."""

import datetime

import pytest
from django.utils import timezone

from core.models import OutboxMessage
from core.retry import RetryPolicy
from core.sweep import sweep

pytestmark = pytest.mark.django_db

STALE = datetime.timedelta(minutes=5)
RETRY = RetryPolicy(first=datetime.timedelta(seconds=30), max_attempts=3)
GIVE_UP = {"status": OutboxMessage.Status.FAILED, "last_error": "its worker stopped on the last attempt"}


def row(*, status: str = "pending", due_in: datetime.timedelta, attempts: int = 0) -> OutboxMessage:
    return OutboxMessage.objects.create(
        channel="sms",
        recipient="+254712345678",
        body="hello",
        status=status,
        attempts=attempts,
        next_attempt_at=timezone.now() + due_in,
    )


def due():
    return OutboxMessage.objects.filter(status="pending", next_attempt_at__lte=timezone.now())


def abandoned():
    return OutboxMessage.objects.filter(status="sending", next_attempt_at__lt=timezone.now() - STALE)


class Bell:
    def __init__(self) -> None:
        self.rings: list[bool] = []

    def __call__(self, *, force: bool = False) -> bool:
        self.rings.append(force)
        return True


def states() -> list[tuple[str, int, str]]:
    return list(OutboxMessage.objects.order_by("pk").values_list("status", "attempts", "last_error"))


def test_it_rings_with_force_when_rows_are_due_and_returns_how_many():
    row(due_in=-datetime.timedelta(minutes=1))
    row(due_in=-datetime.timedelta(seconds=1))
    row(due_in=datetime.timedelta(minutes=1))  # its backoff runs: not due
    bell = Bell()

    assert sweep(due=due(), ring=bell) == 2
    assert bell.rings == [True]  # force: a pending ring that was lost must not block this one


def test_nothing_due_rings_nothing():
    row(due_in=datetime.timedelta(minutes=1))
    row(status="sent", due_in=-datetime.timedelta(minutes=1), attempts=1)
    bell = Bell()

    assert sweep(due=due(), ring=bell) == 0
    assert bell.rings == []


def test_a_dead_workers_rows_are_released_and_rung_for_at_once():
    row(status="sending", due_in=-STALE - datetime.timedelta(minutes=1), attempts=1)  # its worker died
    row(status="sending", due_in=-datetime.timedelta(minutes=1), attempts=1)  # still being sent
    bell = Bell()

    released = sweep(due=due(), ring=bell, abandoned=abandoned(), release={"status": "pending"})

    assert released == 1  # counted after the release: no second sweep needed
    assert bell.rings == [True]
    assert states() == [("pending", 1, ""), ("sending", 1, "")]


def test_a_row_abandoned_on_its_last_attempt_is_given_up_not_released():
    row(status="sending", due_in=-STALE - datetime.timedelta(minutes=1), attempts=RETRY.max_attempts)
    row(status="sending", due_in=-STALE - datetime.timedelta(minutes=1), attempts=RETRY.max_attempts - 1)
    bell = Bell()

    count = sweep(
        due=due(),
        ring=bell,
        abandoned=abandoned(),
        release={"status": "pending"},
        retry=RETRY,
        give_up=GIVE_UP,
    )

    assert count == 1 and bell.rings == [True]
    assert states() == [
        ("failed", RETRY.max_attempts, "its worker stopped on the last attempt"),
        ("pending", RETRY.max_attempts - 1, ""),
    ]


def test_without_give_up_a_spent_row_is_released_like_any_other():
    # A queue whose claim refuses spent rows itself (core.queue.claim_next with a retry) may leave
    # the giving up to it.
    row(status="sending", due_in=-STALE - datetime.timedelta(minutes=1), attempts=RETRY.max_attempts)

    assert sweep(due=due(), ring=Bell(), abandoned=abandoned(), release={"status": "pending"}) == 1
    assert states() == [("pending", RETRY.max_attempts, "")]


def test_abandoned_rows_without_release_fields_are_refused():
    row(status="sending", due_in=-STALE - datetime.timedelta(minutes=1), attempts=1)
    bell = Bell()

    with pytest.raises(TypeError, match="release"):
        sweep(due=due(), ring=bell, abandoned=abandoned())
    assert bell.rings == [] and states() == [("sending", 1, "")]
