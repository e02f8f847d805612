from datetime import timedelta

from core.retry import RetryPolicy
from core.services import outbox
from payments.services import processing


def test_backoff_doubles_from_the_first_delay():
    policy = RetryPolicy(first=timedelta(seconds=5), max_attempts=5)
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]


def test_backoff_never_exceeds_its_cap():
    policy = RetryPolicy(first=timedelta(seconds=30), cap=timedelta(minutes=30), max_attempts=20)
    assert [policy.delay(n).total_seconds() for n in (1, 2, 6, 7, 15)] == [30, 60, 960, 1800, 1800]


def test_an_item_is_given_up_after_its_last_attempt():
    policy = RetryPolicy(first=timedelta(seconds=5), max_attempts=3)
    assert [policy.exhausted(n) for n in (0, 1, 2, 3, 4)] == [False, False, False, True, True]


def test_the_queues_keep_their_schedules():
    assert [processing.RETRY.delay(n).total_seconds() for n in (1, 4)] == [5, 40]
    assert processing.MAX_ATTEMPTS == 5
    assert [outbox.RETRY.delay(n).total_seconds() for n in (1, 2, 10)] == [30, 60, 1800]
    assert outbox.MAX_ATTEMPTS == 5
