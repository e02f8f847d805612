"""Concurrent postings on PostgreSQL: the row lock must serialise them so no shilling is lost."""

import threading
from decimal import Decimal as D

import pytest
from django.db import connection

from core.actors import Actor
from core.exceptions import InvalidState
from core.models import Loan, Repayment
from core.services import repayment_post, repayment_reverse
from tests.factories import LoanFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_in_threads(count: int, work) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            work(index)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_twenty_concurrent_postings_leave_the_exact_balance():
    loan = LoanFactory(
        principal_disbursed=D("10000.00"), principal=D("10000.00"), interest=D("500.00"), fees=D("99.99")
    )
    actor = Actor.system("tests")

    errors = run_in_threads(
        20,
        lambda i: repayment_post(
            loan=loan, amount=D("123.45"), actor=actor, source="mpesa", reference=f"TX{i:02d}"
        ),
    )

    assert errors == []
    loan.refresh_from_db()
    assert loan.outstanding == D("10599.99") - 20 * D("123.45")
    assert (loan.fees, loan.interest) == (D("0.00"), D("0.00"))
    assert loan.principal == D("10000.00") - (20 * D("123.45") - D("599.99"))
    postings = Repayment.objects.filter(loan=loan)
    assert postings.count() == 20
    assert sum(p.amount for p in postings) == 20 * D("123.45")


def test_concurrent_overpayments_never_take_more_than_the_outstanding():
    loan = LoanFactory(principal_disbursed=D("1000.00"), principal=D("1000.00"))
    actor = Actor.system("tests")
    results = []

    def pay(i):
        try:
            results.append(repayment_post(loan=loan, amount=D("300.00"), actor=actor, source="mpesa"))
        except InvalidState:
            results.append(None)  # the loan was already paid by the others

    assert run_in_threads(10, pay) == []
    loan.refresh_from_db()
    assert loan.status == Loan.Status.PAID and loan.outstanding == 0
    applied = sum(r.applied for r in results if r)
    excess = sum(r.excess for r in results if r)
    assert applied == D("1000.00")
    assert applied + excess + D("300.00") * sum(1 for r in results if r is None) == D("3000.00")


def test_a_posting_reversed_twice_at_once_is_reversed_once():
    loan = LoanFactory(principal_disbursed=D("1000.00"), principal=D("1000.00"))
    actor = Actor.system("tests")
    posting = repayment_post(loan=loan, amount=D("400.00"), actor=actor, source="mpesa").repayment
    outcomes = []

    def reverse(i):
        try:
            repayment_reverse(repayment=posting, actor=actor, reason=f"attempt {i}")
            outcomes.append("reversed")
        except InvalidState:
            outcomes.append("refused")

    assert run_in_threads(8, reverse) == []
    assert sorted(outcomes) == ["refused"] * 7 + ["reversed"]
    loan.refresh_from_db()
    assert loan.outstanding == D("1000.00")


def test_outbox_drains_side_by_side_send_each_message_once(settings):
    from core.models import OutboxMessage
    from core.tasks import outbox_drain_task

    settings.SMS_BACKEND = "console"
    OutboxMessage.objects.bulk_create(
        OutboxMessage(channel="sms", recipient="+254722000000", body=f"message {i}") for i in range(30)
    )
    sent: list[int] = []
    assert run_in_threads(3, lambda i: sent.append(outbox_drain_task())) == []
    assert sum(sent) == 30
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {("sent", 1)}
