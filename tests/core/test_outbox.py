"""The outbox end to end through the SMS channel's sender: the console backend, or the Africa's
Talking backend talking HTTP to the fake server. Celery runs eagerly (the embedded default)."""

import datetime

import pytest
from django.test import override_settings
from django.utils import timezone

from core.models import OutboxMessage
from core.services.outbox import (
    MAX_ATTEMPTS,
    outbox_deliver,
    outbox_deliver_batch,
    outbox_queue,
    outbox_sweep,
)
from tests.ussd.fake_africastalking import (  # noqa: F401 (fixtures)
    Reply,
    africastalking_fixture,
    fake_africastalking_fixture,
)

pytestmark = pytest.mark.django_db

PHONE = "+254712345678"
MASKED = "2547*****678"
BODY = "Payment of KES 1,500.00 received. Asante!"
SENDERS = {"sms": "ussd.senders.send_sms"}
console = override_settings(SMS_BACKEND="console", OUTBOX_SENDERS=SENDERS)


@pytest.fixture
def queue(django_capture_on_commit_callbacks):
    """outbox_queue, with the delivery it enqueues on commit run (eagerly) before returning."""

    def queue_and_commit(**kwargs) -> OutboxMessage | None:
        with django_capture_on_commit_callbacks(execute=True):
            message = outbox_queue(channel="sms", recipient=PHONE, body=BODY, **kwargs)
        if message is not None:
            message.refresh_from_db()
        return message

    return queue_and_commit


def make_row(*, status: str, due_in: datetime.timedelta, attempts: int = 0) -> OutboxMessage:
    return OutboxMessage.objects.create(
        channel="sms",
        recipient=PHONE,
        body=BODY,
        status=status,
        attempts=attempts,
        next_attempt_at=timezone.now() + due_in,
    )


def make_due(message: OutboxMessage) -> None:
    OutboxMessage.objects.filter(pk=message.pk).update(
        next_attempt_at=timezone.now() - datetime.timedelta(seconds=1)
    )


@console
def test_delivery_waits_for_the_commit_then_sends_through_the_console(
    django_capture_on_commit_callbacks, capsys
):
    with django_capture_on_commit_callbacks(execute=True):
        message = outbox_queue(channel="sms", recipient=PHONE, body=BODY)
        assert OutboxMessage.objects.get(pk=message.pk).status == OutboxMessage.Status.PENDING
        assert capsys.readouterr().out == ""
    message.refresh_from_db()
    assert message.status == OutboxMessage.Status.SENT
    assert message.attempts == 1
    assert message.provider_id == f"console-{message.pk}"
    assert message.sent_at is not None
    assert message.last_error == ""
    assert capsys.readouterr().out == f"SMS to {MASKED}: {BODY}\n"
    # Sent is final: a late duplicate task sends nothing.
    assert outbox_deliver(message_id=message.pk) is None
    assert capsys.readouterr().out == ""


def test_delivery_through_africastalking_stores_its_message_id(africastalking, queue):
    message = queue()
    assert message.status == OutboxMessage.Status.SENT
    assert message.provider_id == africastalking.message_ids[0]
    assert [r.form["to"] for r in africastalking.requests] == [PHONE]


def test_a_transient_failure_goes_back_to_pending_for_later(africastalking, queue):
    africastalking.answer_http_error(500)
    before = timezone.now()
    message = queue()
    assert message.status == OutboxMessage.Status.PENDING
    assert message.attempts == 1
    # First backoff: 30 s. The eager countdown retry found it not yet due and did nothing.
    assert before + datetime.timedelta(seconds=29) <= message.next_attempt_at
    assert message.next_attempt_at <= timezone.now() + datetime.timedelta(seconds=31)
    assert message.last_error == "Africa's Talking answered HTTP 500: Internal Server Error"
    assert len(africastalking.requests) == 1


def test_a_permanent_failure_fails_at_once(africastalking, queue):
    africastalking.answer_fixture("send_user_in_blacklist")
    message = queue()
    assert message.status == OutboxMessage.Status.FAILED
    assert message.attempts == 1
    assert message.last_error == f"Africa's Talking refused the SMS to {MASKED}: 406 UserInBlacklist"
    assert message.sent_at is None
    assert len(africastalking.requests) == 1


def test_a_message_that_keeps_failing_stops_after_five_attempts(africastalking, queue):
    africastalking.answer_always(Reply(status=503, body="Service Unavailable"))
    message = queue()
    history = [(message.status, message.attempts)]
    while message.status == OutboxMessage.Status.PENDING:
        make_due(message)
        message = outbox_deliver(message_id=message.pk)
        history.append((message.status, message.attempts))
    assert MAX_ATTEMPTS == 5
    assert history == [("pending", 1), ("pending", 2), ("pending", 3), ("pending", 4), ("failed", 5)]
    assert len(africastalking.requests) == 5
    make_due(message)
    assert outbox_deliver(message_id=message.pk) is None
    assert len(africastalking.requests) == 5


def test_a_transient_failure_then_success_is_sent_on_the_next_attempt(africastalking, queue):
    africastalking.answer_slowly(3)
    with africastalking.override_settings(SMS_HTTP_TIMEOUT=1):
        message = queue()
    assert (message.status, message.last_error) == ("pending", "Africa's Talking did not answer within 1 s")
    make_due(message)
    message = outbox_deliver(message_id=message.pk)
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, "")
    assert message.provider_id == africastalking.message_ids[-1]


@console
def test_the_same_dedupe_key_queues_and_sends_once(queue, capsys):
    first = queue(dedupe_key="receipt:QHX81ABC:1")
    assert queue(dedupe_key="receipt:QHX81ABC:1") is None
    # The refused insert was rolled back to its savepoint: the transaction is still usable.
    assert list(OutboxMessage.objects.values_list("pk", flat=True)) == [first.pk]
    assert capsys.readouterr().out == f"SMS to {MASKED}: {BODY}\n"
    assert queue(dedupe_key="receipt:QHX81ABC:2").status == OutboxMessage.Status.SENT


def test_a_queued_message_is_returned_as_stored(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        message = outbox_queue(
            channel="sms", recipient=PHONE, body=BODY, dedupe_key="k:1", context={"kind": "x"}
        )
    stored = OutboxMessage.objects.get()
    assert message is not None and message.pk == stored.pk
    assert (message.created_at, message.next_attempt_at) == (stored.created_at, stored.next_attempt_at)
    assert (stored.status, stored.attempts, stored.dedupe_key, stored.context) == (
        "pending",
        0,
        "k:1",
        {"kind": "x"},
    )


def test_a_batch_sends_the_oldest_due_messages_and_records_each_outcome(africastalking):
    messages = [make_row(status="pending", due_in=datetime.timedelta(seconds=-10 + n)) for n in range(4)]
    africastalking.answer_http_error(500)  # the first send fails (transiently); the rest succeed

    sent = outbox_deliver_batch(limit=3)

    assert [m.pk for m in sent] == [m.pk for m in messages[:3]]
    stored = {m.pk: m for m in OutboxMessage.objects.all()}
    assert [stored[m.pk].status for m in messages] == ["pending", "sent", "sent", "pending"]
    assert [stored[m.pk].attempts for m in messages] == [1, 1, 1, 0]
    assert stored[messages[0].pk].next_attempt_at > timezone.now()  # its backoff
    assert len(africastalking.requests) == 3
    assert outbox_deliver_batch(limit=3)[0].pk == messages[3].pk


@override_settings(OUTBOX_SENDERS={})
def test_a_channel_without_a_sender_fails_with_a_clear_error(queue):
    message = queue()
    assert message.status == OutboxMessage.Status.FAILED
    assert message.last_error == "no sender for channel 'sms' in settings.OUTBOX_SENDERS"


@console
def test_the_sweeper_enqueues_due_pending_messages_only(capsys):
    due = make_row(status="pending", due_in=-datetime.timedelta(minutes=1))
    later = make_row(status="pending", due_in=datetime.timedelta(minutes=1))
    sent = make_row(status="sent", due_in=-datetime.timedelta(minutes=1), attempts=1)
    assert outbox_sweep() == 1
    for row in (due, later, sent):
        row.refresh_from_db()
    assert (due.status, due.attempts, due.provider_id) == ("sent", 1, f"console-{due.pk}")
    assert (later.status, later.attempts) == ("pending", 0)
    assert (sent.status, sent.attempts) == ("sent", 1)
    assert capsys.readouterr().out == f"SMS to {MASKED}: {BODY}\n"


@console
def test_the_sweeper_releases_messages_stuck_in_sending():
    stale = make_row(status="sending", due_in=-datetime.timedelta(minutes=6), attempts=1)
    busy = make_row(status="sending", due_in=-datetime.timedelta(minutes=1), attempts=1)
    exhausted = make_row(status="sending", due_in=-datetime.timedelta(minutes=6), attempts=MAX_ATTEMPTS)
    assert outbox_sweep() == 1
    for row in (stale, busy, exhausted):
        row.refresh_from_db()
    assert (stale.status, stale.attempts) == ("sent", 2)
    assert (busy.status, busy.attempts) == ("sending", 1)
    assert (exhausted.status, exhausted.attempts) == ("failed", MAX_ATTEMPTS)
    assert exhausted.last_error == "the worker sending it stopped on the last attempt"


def test_the_sweeper_retries_a_transient_failure_once_it_is_due(africastalking, queue):
    africastalking.answer_http_error(502, "Bad Gateway")
    message = queue()
    assert outbox_sweep() == 0  # not due yet: its backoff runs
    make_due(message)
    assert outbox_sweep() == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 2)
    assert len(africastalking.requests) == 2
