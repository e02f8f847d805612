"""Matching and posting stored payments: every strategy through the database, overpayment across
loans into credit, notifications, failure and retry, and the sweeper."""

import datetime
import time
import types
from decimal import Decimal as D

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from core.models import AuditEvent, CreditEntry, Loan, OutboxMessage, Repayment
from core.phones import msisdn_hash
from payments.models import Allocation, MpesaTransaction
from payments.parsing import NAIROBI
from payments.services import TransientProcessingError, processing, transaction_process
from payments.tasks import drain_received_task, sweep_received_task
from tests.factories import AdminFactory, BorrowerFactory, LoanFactory, OfficerFactory

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def days(n: int) -> datetime.date:
    return TODAY + datetime.timedelta(days=n)


def stored_payment(config, **fields) -> MpesaTransaction:
    defaults = {
        "trans_id": "RKL51ZDR4F",
        "transaction_type": "Pay Bill",
        "trans_time": datetime.datetime(2026, 11, 20, 12, 13, 25, tzinfo=NAIROBI),
        "amount": D("1000.00"),
        "business_short_code": "600984",
        "bill_reference": "",
        "msisdn": "",
        "msisdn_kind": "missing",
        "first_name": "NICHOLAS",
        "config": config,
    }
    return MpesaTransaction.objects.create(**{**defaults, **fields})


@pytest.fixture
def officer():
    return OfficerFactory(phone="+254700111222")


@pytest.fixture
def borrower(officer):
    return BorrowerFactory(
        phones=["+254722000000"], full_name="Nicholas Kiprono", loan_officer=officer, preferred_language="sw"
    )


def loan(borrower, number, outstanding, due_in, **extra):
    return LoanFactory(
        borrower=borrower,
        loan_number=number,
        principal_disbursed=D(outstanding),
        principal=D(outstanding),
        due_date=days(due_in),
        **extra,
    )


def test_bill_reference_posts_to_the_named_loan_and_queues_receipt_and_officer_note(
    mpesa_config, borrower, officer
):
    older = loan(borrower, "LOAN-000001", "500", 1)
    named = loan(borrower, "LOAN-000002", "3000", 20)
    tx = stored_payment(mpesa_config, bill_reference="loan 2", amount=D("1200.00"))

    tx = transaction_process(trans_id=tx.trans_id)

    assert (tx.status, tx.identified_by, tx.match_strategy) == (
        "processed",
        "bill_reference",
        "bill_reference",
    )
    assert tx.borrower == borrower and tx.attempts == 1 and tx.processing_ms is not None
    named.refresh_from_db()
    older.refresh_from_db()
    assert (named.outstanding, older.outstanding) == (D("1800.00"), D("500.00"))
    allocation = Allocation.objects.get()
    assert (allocation.loan, allocation.amount, allocation.repayment.reference) == (
        named,
        D("1200.00"),
        "RKL51ZDR4F",
    )
    assert allocation.repayment.posted_at == tx.trans_time
    receipt = OutboxMessage.objects.get(recipient="+254722000000")
    assert receipt.body == (
        "HAVEN GRAZURI: Tumepokea KES 1,200.00 (RKL51ZDR4F) kwa LOAN-000002. Salio KES 1,800.00. "
        "Si mkopo sahihi? Jibu HAMISHA RKL51ZDR4F NAMBARI-YA-MKOPO"
    )
    assert len(receipt.body) <= 160
    note = OutboxMessage.objects.get(user=officer)
    assert note.recipient == "+254700111222"
    assert "LOAN-000002 now KES 1,800.00" in note.body and "matched by bill reference" in note.body
    event = AuditEvent.objects.get(action="repayment.posted")
    assert (event.actor_type, event.actor_label) == ("system", "mpesa-engine")


def test_processing_time_is_kept_to_the_microsecond(mpesa_config, borrower, monkeypatch):
    # Posting takes a few milliseconds: whole milliseconds would cut 2.9 ms to 2 (the dashboard's
    # average and the benchmark's per-kind figures read this field).
    clock = iter([1000.0, 1000.0029])
    monkeypatch.setattr(processing, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    loan(borrower, "LOAN-000003", "900", 5)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000003", amount=D("100"))

    transaction_process(trans_id=tx.trans_id)

    tx.refresh_from_db()
    assert (tx.status, tx.processing_ms) == ("processed", pytest.approx(2.9, abs=0.001))


def test_overpayment_fills_other_loans_oldest_due_first_then_credit(mpesa_config, borrower, officer):
    admin = AdminFactory(phone="+254700999888")
    first = loan(borrower, "LOAN-000010", "1000", 30)
    due_soon = loan(borrower, "LOAN-000011", "300", 2)
    due_later = loan(borrower, "LOAN-000012", "200", 9)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000010", amount=D("1750.50"))

    transaction_process(trans_id=tx.trans_id)

    allocations = [(a.target, a.loan_id, a.amount) for a in Allocation.objects.order_by("id")]
    assert allocations == [
        ("loan", first.pk, D("1000.00")),
        ("loan", due_soon.pk, D("300.00")),
        ("loan", due_later.pk, D("200.00")),
        ("credit", None, D("250.50")),
    ]
    assert set(Loan.objects.values_list("status", flat=True)) == {"paid"}
    borrower.refresh_from_db()
    assert borrower.credit_balance == D("250.50")
    assert CreditEntry.objects.get().reference == "RKL51ZDR4F"
    credit_alerts = OutboxMessage.objects.filter(context__kind="credit")
    assert {m.user for m in credit_alerts} == {officer, admin}
    receipt = OutboxMessage.objects.get(recipient="+254722000000")
    assert "LOAN-000010 +2" in receipt.body and "Akiba KES 250.50" in receipt.body
    assert len(receipt.body) <= 160


def test_borrower_without_active_loans_gets_credit(mpesa_config, borrower):
    loan(borrower, "LOAN-000020", "100", 3, status=Loan.Status.WRITTEN_OFF)
    tx = stored_payment(
        mpesa_config, msisdn=msisdn_hash("+254722000000"), msisdn_kind="hashed", amount=D("80")
    )
    tx = transaction_process(trans_id=tx.trans_id)
    assert (tx.status, tx.identified_by, tx.match_strategy) == ("processed", "msisdn", "credit")
    assert Allocation.objects.get().target == "credit"


@pytest.mark.parametrize(
    ("fields", "identified_by", "strategy", "expected_loan"),
    [
        ({"bill_reference": "0722 000 000"}, "payer_reference", "oldest_due", "LOAN-000031"),
        ({"bill_reference": "ID 998877"}, "", "", None),
        ({"bill_reference": "998877"}, "payer_reference", "oldest_due", "LOAN-000031"),
        ({"msisdn": "254722000000", "msisdn_kind": "plain"}, "msisdn", "oldest_due", "LOAN-000031"),
        (
            {"msisdn": msisdn_hash("+254722000000"), "msisdn_kind": "hashed", "amount": D("2005")},
            "msisdn",
            "amount",
            "LOAN-000030",
        ),
        (
            {"msisdn": "2547 ***** 000", "msisdn_kind": "masked", "first_name": "KIPRONO"},
            "msisdn",
            "oldest_due",
            "LOAN-000031",
        ),
        ({"msisdn": "2547 ***** 000", "msisdn_kind": "masked", "first_name": "JOHN"}, "", "", None),
    ],
)
def test_each_identification_strategy_through_the_database(
    mpesa_config, borrower, fields, identified_by, strategy, expected_loan
):
    borrower.national_id = "998877"
    borrower.save()
    loan(borrower, "LOAN-000030", "2000", 15)
    loan(borrower, "LOAN-000031", "5000", 4)
    tx = transaction_process(trans_id=stored_payment(mpesa_config, **fields).trans_id)
    assert (tx.identified_by, tx.match_strategy) == (identified_by, strategy)
    if expected_loan is None:
        assert tx.status == "unmatched" and not Repayment.objects.exists()
    else:
        assert tx.status == "processed"
        assert Allocation.objects.order_by("id").first().loan.loan_number == expected_loan


def test_single_active_loan(mpesa_config, borrower):
    only = loan(borrower, "LOAN-000040", "900", 5)
    loan(borrower, "LOAN-000041", "100", 1, status=Loan.Status.WRITTEN_OFF)
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="+254722000000").trans_id)
    assert tx.match_strategy == "single_loan"
    allocations = list(Allocation.objects.order_by("id").values_list("target", "loan", "amount"))
    assert allocations == [("loan", only.pk, D("900.00")), ("credit", None, D("100.00"))]


def test_unmatched_is_queued_for_staff_and_admins_alerted(mpesa_config):
    admin = AdminFactory(phone="+254700999888")
    OfficerFactory(phone="+254700111333")  # not alerted: no borrower, no officer concerned
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="rent").trans_id)
    assert tx.status == "unmatched" and tx.borrower is None
    alert = OutboxMessage.objects.get()
    assert (alert.user, alert.channel, alert.context) == (
        admin,
        "sms",
        {"trans_id": tx.trans_id, "kind": "unmatched"},
    )
    assert "Unmatched payment RKL51ZDR4F: KES 1,000.00 from NICHOLAS, account 'rent'" in alert.body
    assert MpesaTransaction.objects.needing_attention().get() == tx


def test_processing_twice_posts_once(mpesa_config, borrower):
    target = loan(borrower, "LOAN-000050", "5000", 5)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000050")
    transaction_process(trans_id=tx.trans_id)
    again = transaction_process(trans_id=tx.trans_id)
    assert again.attempts == 1
    target.refresh_from_db()
    assert target.outstanding == D("4000.00")
    assert Repayment.objects.count() == 1
    assert OutboxMessage.objects.filter(recipient="+254722000000").count() == 1


def test_a_defect_marks_the_payment_failed_rolls_back_and_alerts(mpesa_config, borrower, monkeypatch):
    AdminFactory(phone="+254700999888")
    target = loan(borrower, "LOAN-000060", "5000", 5)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000060")

    def broken(**kwargs):
        raise RuntimeError("ledger exploded")

    monkeypatch.setattr("payments.services.processing.queue_payment_news", broken)
    tx = transaction_process(trans_id=tx.trans_id)

    assert tx.status == "failed" and tx.attempts == 1
    assert tx.last_error == "RuntimeError: ledger exploded"
    target.refresh_from_db()
    assert target.outstanding == D("5000.00")  # the posting was rolled back with the failure
    assert not Repayment.objects.exists() and not Allocation.objects.exists()
    # What matching found before the defect stays: the borrower (their officer is alerted and may act
    # on the payment) and what the matcher tried.
    assert tx.borrower == borrower
    assert any("LOAN-000060" in note for note in tx.notes[:-1])
    assert tx.notes[-1] == "attempt 1 failed: RuntimeError: ledger exploded"
    alerted = OutboxMessage.objects.filter(context__kind="failed").values_list("recipient", flat=True)
    assert sorted(alerted) == ["+254700111222", "+254700999888"]

    monkeypatch.undo()
    from core.actors import Actor
    from payments.services import transaction_reprocess

    tx = transaction_reprocess(trans_id=tx.trans_id, actor=Actor.system("tests"))
    assert tx.status == "processed" and tx.attempts == 2


def test_the_money_its_receipt_and_its_audit_rows_commit_together_or_not_at_all(
    mpesa_config, borrower, monkeypatch
):
    """A failure after everything was written (the hot path's prepared statements included) leaves
    neither the money nor its receipt, officer note, allocation or audit row."""
    target = loan(borrower, "LOAN-000061", "5000", 5)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000061")
    real = processing.queue_payment_news
    written = {}

    def news_then_failure(**kwargs):
        real(**kwargs)
        written.update(
            repayments=Repayment.objects.count(),
            audit=AuditEvent.objects.filter(action="repayment.posted").count(),
            messages=OutboxMessage.objects.count(),
        )
        raise RuntimeError("the process died after writing")

    monkeypatch.setattr("payments.services.processing.queue_payment_news", news_then_failure)
    tx = transaction_process(trans_id=tx.trans_id)

    assert written == {"repayments": 1, "audit": 1, "messages": 2}  # all were written, then undone
    assert tx.status == "failed"
    target.refresh_from_db()
    assert target.outstanding == D("5000.00")
    assert not Repayment.objects.exists() and not Allocation.objects.exists()
    assert not AuditEvent.objects.filter(action="repayment.posted").exists()
    assert not OutboxMessage.objects.exclude(context__kind="failed").exists()


def test_transient_errors_leave_the_payment_received_until_the_fifth_attempt(
    mpesa_config, borrower, monkeypatch
):
    loan(borrower, "LOAN-000070", "5000", 5)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000070")

    def locked_out(*args, **kwargs):
        raise OperationalError("could not obtain lock on row")

    monkeypatch.setattr("payments.services.processing.match_payment", locked_out)
    for attempt in range(1, 5):
        with pytest.raises(TransientProcessingError):
            transaction_process(trans_id=tx.trans_id)
        tx.refresh_from_db()
        assert (tx.status, tx.attempts) == ("received", attempt)
    tx = transaction_process(trans_id=tx.trans_id)
    assert (tx.status, tx.attempts) == ("failed", 5)
    assert "could not obtain lock" in tx.last_error


def test_drain_backs_off_a_transient_error_and_carries_on(mpesa_config, borrower, monkeypatch):
    from payments.matching import match_payment

    loan(borrower, "LOAN-000080", "5000", 5)
    flaky_tx = stored_payment(mpesa_config, bill_reference="LOAN-000080")
    other = stored_payment(mpesa_config, trans_id="RKL51ZDR8Y", bill_reference="LOAN-000080", amount=D("10"))
    failures = []

    def flaky(facts, *args, **kwargs):
        if facts.amount == D("1000.00") and len(failures) < 2:
            failures.append(1)
            raise OperationalError("deadlock detected")
        return match_payment(facts, *args, **kwargs)

    monkeypatch.setattr("payments.services.processing.match_payment", flaky)

    drain_received_task()
    flaky_tx.refresh_from_db()
    other.refresh_from_db()
    assert other.status == "processed"  # one payment's trouble holds up no other
    assert (flaky_tx.status, flaky_tx.attempts) == ("received", 1)
    wait = (flaky_tx.next_attempt_at - timezone.now()).total_seconds()
    assert 3 < wait <= 5  # backoff: 5 s after the first failure

    for expected_attempts, expected_status in ((2, "received"), (3, "processed")):
        MpesaTransaction.objects.filter(pk=flaky_tx.pk).update(next_attempt_at=timezone.now())
        drain_received_task()
        flaky_tx.refresh_from_db()
        assert (flaky_tx.status, flaky_tx.attempts) == (expected_status, expected_attempts)
    assert "deadlock detected" in " ".join(flaky_tx.notes)


def test_a_batch_claims_several_payments_and_carries_on_past_a_transient_failure(
    mpesa_config, borrower, monkeypatch
):
    from payments.matching import match_payment
    from payments.services import transaction_process_batch

    loan(borrower, "LOAN-000081", "50000", 5)
    for n in range(4):
        stored_payment(
            mpesa_config,
            trans_id=f"RKL51ZDR{n}A",
            bill_reference="LOAN-000081",
            amount=D(100 + n),
            next_attempt_at=timezone.now() - datetime.timedelta(seconds=10 - n),
        )

    def flaky(facts, *args, **kwargs):
        if facts.amount == D("101"):
            raise OperationalError("could not serialize access")
        return match_payment(facts, *args, **kwargs)

    monkeypatch.setattr("payments.services.processing.match_payment", flaky)

    done, retry_in = transaction_process_batch(limit=3)

    assert [tx.trans_id for tx in done] == ["RKL51ZDR0A", "RKL51ZDR2A"]  # oldest due first, 1A failed
    assert retry_in is not None and 0 < retry_in <= 5
    statuses = dict(MpesaTransaction.objects.values_list("trans_id", "status"))
    assert statuses == {
        "RKL51ZDR0A": "processed",
        "RKL51ZDR1A": "received",
        "RKL51ZDR2A": "processed",
        "RKL51ZDR3A": "received",  # beyond the batch: not claimed, no attempt used
    }
    assert MpesaTransaction.objects.get(trans_id="RKL51ZDR3A").attempts == 0


def test_drain_takes_due_payments_only(mpesa_config, borrower):
    loan(borrower, "LOAN-000085", "5000", 5)
    due = stored_payment(mpesa_config, bill_reference="LOAN-000085")
    later = stored_payment(
        mpesa_config,
        trans_id="RKL51ZDR7X",
        bill_reference="LOAN-000085",
        next_attempt_at=timezone.now() + datetime.timedelta(minutes=1),
    )
    assert drain_received_task() == 1
    due.refresh_from_db()
    later.refresh_from_db()
    assert (due.status, later.status) == ("processed", "received")


def test_sweeper_rings_for_payments_whose_ring_was_lost(mpesa_config, borrower, monkeypatch):
    target = loan(borrower, "LOAN-000090", "5000", 5)
    fresh = stored_payment(mpesa_config, trans_id="RKL51ZDR9Z", bill_reference="LOAN-000090")
    assert sweep_received_task() == 0  # a payment a few seconds old still has its ring coming
    fresh.refresh_from_db()
    assert fresh.status == "received"

    stale = stored_payment(mpesa_config, bill_reference="LOAN-000090")
    MpesaTransaction.objects.filter(pk=stale.pk).update(
        received_at=timezone.now() - datetime.timedelta(minutes=5)
    )
    assert sweep_received_task() == 1

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, fresh.status) == ("processed", "processed")
    target.refresh_from_db()
    assert target.outstanding == D("3000.00")


def test_a_lost_ring_does_not_block_later_ones(mpesa_config, borrower, monkeypatch):
    from core import doorbell
    from payments.tasks import ring_doorbell

    monkeypatch.setattr(doorbell, "TTL", 1)
    ring_doorbell()  # rings, and its drain runs...
    monkeypatch.setattr("payments.tasks.drain_received_task.delay", lambda: None)
    assert ring_doorbell() is True  # ...and re-armed the bell; this ring's drain is lost
    loan(borrower, "LOAN-000091", "5000", 5)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000091")
    assert ring_doorbell() is False  # the lost ring still blocks...
    monkeypatch.undo()
    monkeypatch.setattr(doorbell, "TTL", 1)
    time.sleep(2.1)  # the database cache (without Redis) keeps expiry times to the whole second
    assert ring_doorbell() is True  # ...until its TTL ends
    tx.refresh_from_db()
    assert tx.status == "processed"


def test_a_worker_dying_mid_posting_loses_nothing(mpesa_config, borrower, monkeypatch):
    """A worker killed mid-task: its transaction never commits, the payment stays received, and the
    sweeper (or the broker's redelivery, acks_late) posts it exactly once later."""
    target = loan(borrower, "LOAN-000095", "5000", 5)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000095", amount=D("7000"))
    calls = []
    from core.services import borrower_credit_add as real_credit_add

    def killed(**kwargs):
        calls.append(1)
        raise SystemExit("worker killed")  # not an Exception: nothing in the engine catches it

    monkeypatch.setattr("payments.services.processing.borrower_credit_add", killed)
    with pytest.raises(SystemExit):
        transaction_process(trans_id=tx.trans_id)
    tx.refresh_from_db()
    target.refresh_from_db()
    assert tx.status == "received" and target.outstanding == D("5000.00")
    assert not Repayment.objects.exists()

    monkeypatch.setattr("payments.services.processing.borrower_credit_add", real_credit_add)
    MpesaTransaction.objects.filter(pk=tx.pk).update(
        received_at=timezone.now() - datetime.timedelta(minutes=2)
    )
    sweep_received_task()
    tx.refresh_from_db()
    target.refresh_from_db()
    assert tx.status == "processed" and target.status == "paid"
    assert CreditEntry.objects.get().amount == D("2000.00")


def test_a_failure_recorded_after_another_worker_settled_the_payment_changes_nothing(mpesa_config, borrower):
    """Worker A fails and rolls back; before A records the failure, worker B posts the payment.
    A's record must not put it back in the queue (it would be posted twice)."""
    from payments.services.processing import _record_failure

    target = loan(borrower, "LOAN-000096", "5000", 5)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000096")
    transaction_process(trans_id=tx.trans_id)  # worker B
    after = _record_failure(
        trans_id=tx.trans_id, error="OperationalError: deadlock", transient=True, counted=True
    )
    assert (after.status, after.attempts, after.last_error) == ("processed", 1, "")
    assert drain_received_task() == 0
    target.refresh_from_db()
    assert target.outstanding == D("4000.00")


def test_a_payment_with_live_allocations_is_never_posted_again(mpesa_config, borrower):
    target = loan(borrower, "LOAN-000097", "5000", 5)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000097")
    transaction_process(trans_id=tx.trans_id)
    MpesaTransaction.objects.filter(pk=tx.pk).update(
        status="received"
    )  # a row in a state it should never reach
    tx = transaction_process(trans_id=tx.trans_id)
    assert tx.status == "failed" and "already has allocations" in tx.last_error
    target.refresh_from_db()
    assert target.outstanding == D("4000.00")


def test_a_claim_counts_the_attempt_and_leases_the_payment(mpesa_config, borrower, monkeypatch):
    """A worker that dies mid-payment has used an attempt; the payment waits out its lease."""
    target = loan(borrower, "LOAN-000098", "5000", 5)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000098")

    def killed(*args, **kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr("payments.services.processing.match_payment", killed)
    with pytest.raises(SystemExit):
        drain_received_task()
    tx.refresh_from_db()
    assert (tx.status, tx.attempts) == ("received", 1)
    assert 100 < (tx.next_attempt_at - timezone.now()).total_seconds() <= 120
    monkeypatch.undo()
    assert drain_received_task() == 0  # leased: not due yet

    MpesaTransaction.objects.filter(pk=tx.pk).update(next_attempt_at=timezone.now())
    assert drain_received_task() == 1
    tx.refresh_from_db()
    target.refresh_from_db()
    assert (tx.status, tx.attempts, target.outstanding) == ("processed", 2, D("4000.00"))


def test_a_payment_that_keeps_killing_workers_is_given_up_not_retried_forever(mpesa_config, borrower):
    AdminFactory(phone="+254700999888")
    poison = stored_payment(mpesa_config, bill_reference="LOAN-000099", attempts=5)
    loan(borrower, "LOAN-000099", "5000", 5)
    healthy = stored_payment(mpesa_config, trans_id="RKL51ZDR6W", bill_reference="LOAN-000099")
    drain_received_task()
    poison.refresh_from_db()
    healthy.refresh_from_db()
    assert poison.status == "failed" and "given up after 5 attempts" in poison.notes
    assert healthy.status == "processed"  # the queue moved on
    assert OutboxMessage.objects.filter(context__kind="failed", context__trans_id=poison.trans_id).exists()


def test_a_transient_failure_through_the_api_is_503_not_500(mpesa_config, monkeypatch, client):
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="rent").trans_id)

    def locked_out(*args, **kwargs):
        raise OperationalError("deadlock detected")

    monkeypatch.setattr("payments.services.processing.match_payment", locked_out)
    client.force_login(AdminFactory())
    response = client.post(f"/api/v1/transactions/{tx.trans_id}/reprocess", content_type="application/json")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("processing is briefly unavailable, try again shortly")


def test_a_debounced_web_process_rings_once_per_window(settings, monkeypatch):
    from core import doorbell
    from payments.tasks import ring_doorbell

    settings.PAYMENTS_DOORBELL_DEBOUNCE = 60.0
    drains = []
    monkeypatch.setattr("payments.tasks.drain_received_task.delay", lambda: drains.append(1))
    assert ring_doorbell() is True
    doorbell.rearm("payments:doorbell")  # a drain started and re-armed the bell...
    assert ring_doorbell() is False  # ...yet this process asked a moment ago: no cache call, no drain
    assert ring_doorbell(force=True) is True  # the sweeper's force is never debounced
    monkeypatch.setitem(
        doorbell._last_asked, "payments:doorbell", doorbell._last_asked["payments:doorbell"] - 61
    )
    doorbell.rearm("payments:doorbell")
    assert ring_doorbell() is True  # the window has passed
    assert len(drains) == 3 * settings.PAYMENTS_DRAINERS


def test_a_drain_waits_out_the_debounce_for_payments_whose_ring_was_skipped(
    mpesa_config, borrower, settings, monkeypatch
):
    # A web process that rang just before the drain re-armed the bell skips its next ring; the
    # payment it stores then is found because the drain keeps looking until the window is over.
    target = loan(borrower, "LOAN-000092", "5000", 5)
    settings.PAYMENTS_DOORBELL_DEBOUNCE = 0.2
    waits = []
    sleep = time.sleep

    def payment_arrives_while_waiting(seconds):
        waits.append(seconds)
        if len(waits) == 1:
            stored_payment(mpesa_config, trans_id="RKL51ZDR9Y", bill_reference="LOAN-000092")
        sleep(seconds)

    monkeypatch.setattr("core.queue.time.sleep", payment_arrives_while_waiting)
    assert drain_received_task() == 1
    assert len(waits) == 1 and 0 < waits[0] <= 0.2  # one wait, no longer than the window
    target.refresh_from_db()
    assert target.outstanding == D("4000.00")

    settings.PAYMENTS_DOORBELL_DEBOUNCE = 0.0
    assert drain_received_task() == 0
    assert len(waits) == 1  # without a debounce a drain stops as soon as it finds nothing


def _waiting_payments(config, numbers, *, start):
    MpesaTransaction.objects.bulk_create(
        MpesaTransaction(
            trans_id=f"QBURST{number:05d}",
            trans_time=start,
            amount=D("100.00"),
            business_short_code="600984",
            msisdn_kind="missing",
            config=config,
            raw_body="x" * 600,  # a confirmation's size
            next_attempt_at=start + datetime.timedelta(milliseconds=10 * number),
        )
        for number in numbers
    )


def _payment_pages_read() -> int:  # of the payments table, in this transaction (the test's)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_get_xact_blocks_fetched('payments_mpesatransaction'::regclass)")
        return cursor.fetchone()[0]


@pytest.mark.postgres("planner statistics and row locks are PostgreSQL's")
def test_a_claim_reads_about_the_rows_it_takes_when_a_burst_outruns_the_statistics(mpesa_config):
    # 10,000 payments stored faster than autovacuum analyses the table (here: never analysed), so
    # the planner believes about five are due. For each claim of ten it then read every waiting
    # payment and sorted them (about 1,070 pages here, against 75 now; 12-19 ms a claim), and a
    # backlog drained slower the longer it was.
    _waiting_payments(mpesa_config, range(10_000), start=timezone.now() - datetime.timedelta(hours=1))

    before = _payment_pages_read()
    claimed = processing._claim(10)
    read = _payment_pages_read() - before

    assert claimed == [f"QBURST{number:05d}" for number in range(10)]  # the oldest, in order
    assert read < 200, f"the claim of 10 read {read} pages of the payments table"


@pytest.mark.postgres("prepared statements' cached plans are PostgreSQL's")
def test_a_claim_stays_cheap_after_the_queue_grew_under_its_cached_plans(mpesa_config):
    # Claims made while the table was small leave their prepared statements a plan for a small
    # table; the lease UPDATE of ten rows by id then scanned the whole table once it had grown
    # (1,000-1,500 pages a claim with 10,000 waiting, for the payments and the outbox alike).
    start = timezone.now() - datetime.timedelta(hours=1)
    _waiting_payments(mpesa_config, range(80), start=start)
    for _ in range(8):  # past the five custom plans after which PostgreSQL may keep a generic one
        assert len(processing._claim(10)) == 10
    _waiting_payments(mpesa_config, range(100, 10_100), start=start)

    before = _payment_pages_read()
    claimed = processing._claim(10)
    read = _payment_pages_read() - before

    assert claimed == [f"QBURST{number:05d}" for number in range(100, 110)]
    assert read < 200, f"the claim of 10 read {read} pages of the payments table"
