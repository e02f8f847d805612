"""The database work queue (core.queue): claim, lease, giving up, and the drain loop. The outbox's
rows serve as the queue here; payments and outbox tests cover each queue's own rules."""

import datetime
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from core import doorbell
from core.models import OutboxMessage
from core.queue import Worked, WorkQueue, claim_batch, claim_next, drain
from core.retry import RetryPolicy
from core.services.outbox import QUEUE as OUTBOX_QUEUE
from payments.services.processing import QUEUE as PAYMENTS_QUEUE

pytestmark = pytest.mark.django_db

LEASE = datetime.timedelta(minutes=2)


def row(*, due_in: datetime.timedelta = -datetime.timedelta(seconds=1), attempts: int = 0) -> OutboxMessage:
    return OutboxMessage.objects.create(
        channel="sms",
        recipient="+254712345678",
        body="hello",
        attempts=attempts,
        next_attempt_at=timezone.now() + due_in,
    )


QUEUE = WorkQueue(OutboxMessage, ready="pending")


def test_the_oldest_due_row_is_claimed_with_its_attempt_counted_and_leased():
    later = row(due_in=-datetime.timedelta(seconds=1))
    first = row(due_in=-datetime.timedelta(minutes=5), attempts=1)
    row(due_in=datetime.timedelta(minutes=5))  # not due yet

    claimed = claim_next(QUEUE, lease=LEASE)

    assert claimed is not None and claimed.pk == first.pk
    stored = OutboxMessage.objects.get(pk=first.pk)  # committed, not only on the instance
    assert stored.attempts == 2
    assert LEASE - datetime.timedelta(seconds=5) < stored.next_attempt_at - timezone.now() <= LEASE
    assert claim_next(QUEUE, lease=LEASE).pk == later.pk
    assert claim_next(QUEUE, lease=LEASE) is None  # the leased rows are not due: nothing left


def test_a_leased_row_comes_back_when_its_lease_ends():
    leased = row()
    claim_next(QUEUE, lease=LEASE)
    assert claim_next(QUEUE, lease=LEASE) is None

    OutboxMessage.objects.filter(pk=leased.pk).update(
        next_attempt_at=timezone.now() - datetime.timedelta(seconds=1)
    )

    again = claim_next(QUEUE, lease=LEASE)
    assert again is not None and (again.pk, again.attempts) == (leased.pk, 2)


def test_marks_are_set_with_the_claim():
    message = row()
    claim_next(QUEUE, lease=datetime.timedelta(0), status=OutboxMessage.Status.SENDING)
    assert OutboxMessage.objects.get(pk=message.pk).status == "sending"


def test_a_row_that_used_every_attempt_is_given_up_not_claimed():
    spent = row(attempts=3)
    given_up = []

    def give_up(message: OutboxMessage) -> None:
        message.status = OutboxMessage.Status.FAILED
        message.save(update_fields=["status"])
        given_up.append(message.pk)

    returned = claim_next(QUEUE, lease=LEASE, retry=RetryPolicy(first=LEASE, max_attempts=3), give_up=give_up)

    assert returned.pk == spent.pk and given_up == [spent.pk]
    stored = OutboxMessage.objects.get(pk=spent.pk)
    assert (stored.status, stored.attempts) == ("failed", 3)  # no attempt counted for it


def test_a_batch_claims_the_oldest_due_rows_in_order_each_counted_and_leased():
    rows = [row(due_in=-datetime.timedelta(minutes=n), attempts=n % 2) for n in range(5, 0, -1)]
    row(due_in=datetime.timedelta(minutes=5))  # not due yet

    claimed = claim_batch(QUEUE, lease=LEASE, limit=3, status=OutboxMessage.Status.SENDING)

    assert [message.pk for message in claimed] == [message.pk for message in rows[:3]]
    for message, before in zip(claimed, rows[:3], strict=True):
        stored = OutboxMessage.objects.get(pk=message.pk)  # committed, not only on the instances
        assert stored.attempts == message.attempts == before.attempts + 1
        assert stored.status == message.status == "sending"
        assert stored.next_attempt_at == message.next_attempt_at > timezone.now()
    rest = claim_batch(QUEUE, lease=LEASE, limit=3)
    assert [message.pk for message in rest] == [message.pk for message in rows[3:]]
    assert claim_batch(QUEUE, lease=LEASE, limit=3) == []


def test_a_claimed_row_is_the_row_the_orm_reads_its_unread_columns_load_on_access():
    message = row()
    claimed = claim_next(WorkQueue(OutboxMessage, ready="pending", unread=("body",)), lease=LEASE)
    stored = OutboxMessage.objects.get(pk=message.pk)

    assert claimed.get_deferred_fields() == {"body"}
    fields = [f.attname for f in OutboxMessage._meta.concrete_fields if f.name != "body"]
    assert {name: getattr(claimed, name) for name in fields} == {
        name: getattr(stored, name) for name in fields
    }
    assert claimed.body == "hello"


def test_a_claim_of_one_row_by_id_takes_it_only_when_due():
    older, wanted, later = (
        row(due_in=-datetime.timedelta(minutes=5)),
        row(),
        row(due_in=datetime.timedelta(minutes=5)),
    )

    assert [message.pk for message in claim_batch(QUEUE, lease=LEASE, limit=5, pk=wanted.pk)] == [wanted.pk]
    assert claim_batch(QUEUE, lease=LEASE, limit=5, pk=later.pk) == []
    assert claim_batch(QUEUE, lease=LEASE, limit=5, pk=wanted.pk) == []  # leased now
    assert OutboxMessage.objects.get(pk=older.pk).attempts == 0


def test_a_row_due_a_moment_from_now_is_not_claimed_yet():
    # SQLite compares datetimes as text: the claim's "now" must be written as the ORM writes it.
    soon = row(due_in=datetime.timedelta(milliseconds=300))
    assert claim_next(QUEUE, lease=LEASE) is None
    OutboxMessage.objects.filter(pk=soon.pk).update(
        next_attempt_at=timezone.now() - datetime.timedelta(microseconds=1)
    )
    assert claim_next(QUEUE, lease=LEASE).pk == soon.pk


def test_a_batch_gives_up_spent_rows_and_claims_the_others():
    spent, fresh = row(due_in=-datetime.timedelta(minutes=2), attempts=3), row()
    given_up = []

    def give_up(message: OutboxMessage) -> None:
        message.status = OutboxMessage.Status.FAILED
        message.save(update_fields=["status"])
        given_up.append(message.pk)

    returned = claim_batch(
        QUEUE, lease=LEASE, limit=5, retry=RetryPolicy(first=LEASE, max_attempts=3), give_up=give_up
    )

    assert [message.pk for message in returned] == [spent.pk, fresh.pk] and given_up == [spent.pk]
    assert OutboxMessage.objects.get(pk=spent.pk).attempts == 3  # no attempt counted for it
    assert OutboxMessage.objects.get(pk=fresh.pk).attempts == 1


@pytest.mark.postgres("SKIP LOCKED")
@pytest.mark.django_db(transaction=True)
def test_a_row_another_worker_holds_is_skipped_not_waited_for():
    held, free = row(due_in=-datetime.timedelta(minutes=2)), row()
    locked, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        try:
            with transaction.atomic():
                list(OutboxMessage.objects.select_for_update().filter(pk=held.pk))
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    worker = threading.Thread(target=other_worker)
    worker.start()
    try:
        assert locked.wait(10)
        claimed = claim_next(QUEUE, lease=LEASE)
        assert claimed is not None and claimed.pk == free.pk
    finally:
        release.set()
        worker.join(10)


class FakeTask:
    """What drain needs of its Celery task: ``request.is_eager``, ``delay`` and ``apply_async``."""

    class request:
        is_eager = False

    def __init__(self) -> None:
        self.delayed = 0
        self.countdowns: list[float] = []

    def delay(self) -> None:
        self.delayed += 1

    def apply_async(self, *, countdown: float) -> None:
        self.countdowns.append(countdown)


def test_a_drain_works_until_nothing_is_due_and_comes_back_for_transient_failures():
    outcomes = iter([Worked(), Worked(retry_in=4.2), Worked(), None])
    task = FakeTask()

    assert drain(task=task, bell="test:queue", work=lambda: next(outcomes)) == 3

    assert task.countdowns == [5]  # rounded up: never earlier than the item is due
    assert task.delayed == 0


def test_a_drain_hands_over_to_a_fresh_task_after_its_batch():
    task = FakeTask()
    assert drain(task=task, bell="test:queue", work=Worked, batch=3) == 3
    assert task.delayed == 1


def test_a_drain_counts_units_of_several_items():
    outcomes = iter([Worked(done=3), Worked(done=2, retry_in=1.5), Worked(done=4), None])
    task = FakeTask()

    assert drain(task=task, bell="test:queue", work=lambda: next(outcomes), batch=100) == 9
    assert task.countdowns == [2] and task.delayed == 0

    task = FakeTask()
    assert drain(task=task, bell="test:queue", work=lambda: Worked(done=4), batch=10) == 12
    assert task.delayed == 1  # the batch is reached in units: a fresh task goes on


def test_a_drain_stops_when_the_queue_cannot_be_read():
    outcomes = iter([Worked(), Worked(retry_in=5, stop=True), Worked()])
    task = FakeTask()
    assert drain(task=task, bell="test:queue", work=lambda: next(outcomes)) == 1
    assert task.countdowns == [5]


def test_a_drain_rearms_its_bell(settings):
    assert doorbell.cache.add("test:queue", 1, timeout=doorbell.TTL)
    drain(task=FakeTask(), bell="test:queue", work=lambda: None)
    assert doorbell.cache.add("test:queue", 1, timeout=doorbell.TTL)  # free again: the next ring rings
    doorbell.cache.delete("test:queue")


@pytest.mark.parametrize("queue", [PAYMENTS_QUEUE, OUTBOX_QUEUE], ids=["payments", "outbox"])
def test_each_queue_has_an_index_in_the_order_its_rows_are_claimed(queue):
    claim_order = ["status", "next_attempt_at", queue.model._meta.pk.name]
    assert claim_order in [list(index.fields) for index in queue.model._meta.indexes]


@pytest.mark.postgres("enable_sort and enable_seqscan are PostgreSQL's")
def test_a_claim_inside_a_callers_transaction_leaves_its_planner_settings_alone():
    row()
    with transaction.atomic():
        claim_next(QUEUE, lease=LEASE)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('enable_sort'), current_setting('enable_seqscan')")
            assert cursor.fetchone() == ("on", "on")
