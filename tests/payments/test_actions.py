"""Staff actions on payments: reprocess, assign (and re-assign), mark reviewed, reverse."""

import datetime
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from django.utils import timezone

from core.actors import Actor
from core.exceptions import InvalidInput, InvalidState, NotFound
from core.models import AuditEvent, Loan, OutboxMessage, Repayment
from payments.models import Allocation, MpesaTransaction
from payments.services import (
    transaction_assign,
    transaction_mark_reviewed,
    transaction_process,
    transaction_reprocess,
    transaction_reverse,
)
from tests.factories import AdminFactory, BorrowerFactory, LoanFactory, OfficerFactory
from tests.payments.test_processing import stored_payment

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    # An admin: these tests are about what each action does; test_portfolio_scope_* about who may.
    return AdminFactory()


@pytest.fixture
def actor(staff):
    return Actor.staff(staff)


def make_loan(number, outstanding, *, borrower=None, due_in=10):
    return LoanFactory(
        loan_number=number,
        borrower=borrower or BorrowerFactory(),
        principal_disbursed=D(outstanding),
        principal=D(outstanding),
        due_date=timezone.localdate() + datetime.timedelta(days=due_in),
    )


def test_assign_an_unmatched_payment(mpesa_config, actor, staff):
    target = make_loan("LOAN-000200", "5000")
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="rent").trans_id)
    assert tx.status == "unmatched"

    tx = transaction_assign(
        trans_id=tx.trans_id, loan_number="LOAN-000200", actor=actor, reason="called the borrower"
    )

    assert (tx.status, tx.identified_by, tx.match_strategy, tx.borrower) == (
        "processed",
        "manual",
        "manual",
        target.borrower,
    )
    assert tx.reviewed_by == staff
    target.refresh_from_db()
    assert target.outstanding == D("4000.00")
    assert tx.notes[-1] == f"assigned to LOAN-000200 by {staff.username}: called the borrower"
    event = AuditEvent.objects.get(action="mpesa.assigned")
    assert (event.actor_user, event.reason, event.loan) == (staff, "called the borrower", target)
    assert OutboxMessage.objects.filter(borrower=target.borrower).count() == 1  # the receipt


def test_reassigning_reverses_the_earlier_posting_and_credit_exactly(mpesa_config, actor):
    wrong_borrower = BorrowerFactory()
    wrong = make_loan("LOAN-000300", "600", borrower=wrong_borrower)
    right = make_loan("LOAN-000301", "5000")
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000300", amount=D("1000.00"))
    transaction_process(trans_id=tx.trans_id)
    wrong.refresh_from_db()
    wrong_borrower.refresh_from_db()
    assert (wrong.status, wrong_borrower.credit_balance) == ("paid", D("400.00"))

    transaction_assign(trans_id=tx.trans_id, loan_number="LOAN-000301", actor=actor, reason="typo in account")

    wrong.refresh_from_db()
    wrong_borrower.refresh_from_db()
    right.refresh_from_db()
    assert (wrong.status, wrong.outstanding, wrong_borrower.credit_balance) == (
        "active",
        D("600.00"),
        D("0.00"),
    )
    assert right.outstanding == D("4000.00")
    live = Allocation.objects.filter(reversed_at__isnull=True)
    assert [(a.loan, a.amount) for a in live] == [(right, D("1000.00"))]
    assert Allocation.objects.filter(reversed_at__isnull=False).count() == 2
    assert Repayment.objects.filter(kind="reversal", loan=wrong).count() == 1


def test_assign_refuses_missing_and_inactive_loans_and_reversed_payments(mpesa_config, actor):
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="rent").trans_id)
    with pytest.raises(NotFound):
        transaction_assign(trans_id=tx.trans_id, loan_number="LOAN-999999", actor=actor)
    paid = make_loan("LOAN-000400", "100")
    Loan.objects.filter(pk=paid.pk).update(status="paid", principal=0)
    with pytest.raises(InvalidState, match="paid"):
        transaction_assign(trans_id=tx.trans_id, loan_number="LOAN-000400", actor=actor)
    with pytest.raises(NotFound):
        transaction_assign(trans_id="NOPE000000", loan_number="LOAN-000400", actor=actor)
    transaction_reverse(trans_id=tx.trans_id, actor=actor, reason="refunded by Safaricom")
    make_loan("LOAN-000401", "100")
    with pytest.raises(InvalidState, match="reversed"):
        transaction_assign(trans_id=tx.trans_id, loan_number="LOAN-000401", actor=actor)


def test_reassign_refused_when_the_credit_was_already_spent(mpesa_config, actor):
    borrower = BorrowerFactory()
    make_loan("LOAN-000500", "100", borrower=borrower)
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000500", amount=D("500"))
    transaction_process(trans_id=tx.trans_id)
    from core.services import borrower_credit_use

    borrower_credit_use(borrower=borrower, amount=D("300"), actor=actor, reason="refund")
    make_loan("LOAN-000501", "1000")
    with pytest.raises(InvalidState, match="credit balance"):
        transaction_assign(trans_id=tx.trans_id, loan_number="LOAN-000501", actor=actor)
    assert Repayment.objects.filter(kind="reversal").count() == 0  # nothing half-done


def test_reprocess_only_what_is_not_settled(mpesa_config, actor, staff):
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="LOAN-000600").trans_id)
    assert tx.status == "unmatched"
    make_loan("LOAN-000600", "5000")
    tx = transaction_reprocess(trans_id=tx.trans_id, actor=actor, reason="loan imported late")
    assert (tx.status, tx.attempts) == ("processed", 2)
    assert AuditEvent.objects.get(action="mpesa.reprocessed").data["status_before"] == "unmatched"
    with pytest.raises(InvalidState, match="processed"):
        transaction_reprocess(trans_id=tx.trans_id, actor=actor)


def test_mark_reviewed_once(mpesa_config, actor, staff):
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="rent").trans_id)
    tx = transaction_mark_reviewed(trans_id=tx.trans_id, actor=actor, note="refunded at the branch")
    assert tx.reviewed_by == staff and tx.reviewed_at is not None
    assert not MpesaTransaction.objects.needing_attention().exists()
    assert AuditEvent.objects.get(action="mpesa.reviewed").reason == "refunded at the branch"
    with pytest.raises(InvalidState):
        transaction_mark_reviewed(trans_id=tx.trans_id, actor=actor)


def test_reverse_undoes_postings_and_needs_a_reason(mpesa_config, actor):
    target = make_loan("LOAN-000700", "800")
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000700", amount=D("1000"))
    transaction_process(trans_id=tx.trans_id)
    with pytest.raises(InvalidInput):
        transaction_reverse(trans_id=tx.trans_id, actor=actor, reason=" ")
    tx = transaction_reverse(trans_id=tx.trans_id, actor=actor, reason="Safaricom reversal")
    assert tx.status == "reversed"
    target.refresh_from_db()
    target.borrower.refresh_from_db()
    assert (target.outstanding, target.status, target.borrower.credit_balance) == (
        D("800.00"),
        "active",
        D("0.00"),
    )
    with pytest.raises(InvalidState):
        transaction_reverse(trans_id=tx.trans_id, actor=actor, reason="again")
    assert transaction_process(trans_id=tx.trans_id).status == "reversed"  # never posted again


# --- A payment held for staff -----------------------------------------------------------------------


@pytest.fixture
def held(mpesa_config):
    tx = stored_payment(
        mpesa_config, trans_id="RKLHELD001", business_short_code="999999", bill_reference="LOAN-000300"
    )
    tx = transaction_process(trans_id=tx.trans_id)
    assert tx.status == "held"
    return tx


def test_a_held_payment_is_assigned_by_staff(held, admin_user):
    loan = make_loan("LOAN-000300", "5000")

    tx = transaction_assign(
        trans_id=held.trans_id,
        loan_number="LOAN-000300",
        actor=Actor.staff(admin_user),
        reason="our customer",
    )

    loan.refresh_from_db()
    assert (tx.status, loan.outstanding) == ("processed", D("4000.00"))
    assert tx.held_reason == "paid to short code 999999, not this paybill (600984)"  # history
    assert not MpesaTransaction.objects.needing_attention().exists()


def test_a_held_payment_reviewed_no_longer_needs_attention_and_stays_held(held, admin_user):
    tx = transaction_mark_reviewed(trans_id=held.trans_id, actor=Actor.staff(admin_user), note="refunded")

    assert tx.status == "held" and not tx.allocations.exists()
    assert not MpesaTransaction.objects.needing_attention().exists()


def test_reprocess_does_not_release_a_held_payment(held, admin_user):
    with pytest.raises(
        InvalidState, match=r"RKLHELD001 is held for staff .*; assign it to a loan or mark it reviewed"
    ):
        transaction_reprocess(trans_id=held.trans_id, actor=Actor.staff(admin_user))
    assert MpesaTransaction.objects.get(pk=held.pk).status == "held"


# --- Portfolio scope: checked inside the services, for every caller ---------------------------------


@pytest.fixture
def outside(mpesa_config):
    """A payment posted to a loan of another officer's portfolio, and an officer who is not theirs."""
    make_loan("LOAN-000400", "5000", borrower=BorrowerFactory(loan_officer=OfficerFactory()))
    tx = transaction_process(
        trans_id=stored_payment(mpesa_config, trans_id="RKLOUT0001", bill_reference="LOAN-000400").trans_id
    )
    return SimpleNamespace(tx=tx, officer=OfficerFactory())


def test_portfolio_scope_an_officer_outside_gets_not_found_from_every_action(outside):
    actor = Actor.staff(outside.officer)
    mine = make_loan("LOAN-000401", "5000", borrower=BorrowerFactory(loan_officer=outside.officer))
    calls = [
        lambda: transaction_reprocess(trans_id="RKLOUT0001", actor=actor),
        lambda: transaction_assign(trans_id="RKLOUT0001", loan_number=mine.loan_number, actor=actor),
        lambda: transaction_mark_reviewed(trans_id="RKLOUT0001", actor=actor),
        lambda: transaction_reverse(trans_id="RKLOUT0001", actor=actor, reason="x"),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="no M-Pesa transaction RKLOUT0001"):
            call()
    tx = MpesaTransaction.objects.get(trans_id="RKLOUT0001")
    assert (tx.status, tx.reviewed_at, tx.allocations.get().loan.loan_number) == (
        "processed",
        None,
        "LOAN-000400",
    )


def test_portfolio_scope_an_officer_may_not_move_money_onto_another_portfolio(mpesa_config, outside):
    officer = outside.officer
    make_loan("LOAN-000402", "5000", borrower=BorrowerFactory(loan_officer=officer))
    tx = transaction_process(
        trans_id=stored_payment(mpesa_config, trans_id="RKLMINE001", bill_reference="LOAN-000402").trans_id
    )

    with pytest.raises(NotFound, match="no loan numbered loan-000400"):
        transaction_assign(trans_id=tx.trans_id, loan_number="loan-000400", actor=Actor.staff(officer))


def test_portfolio_scope_does_not_bound_borrower_or_system_actors(outside):
    # A borrower's own service checks ownership itself; the engine and commands act for everyone.
    other = make_loan("LOAN-000403", "5000", borrower=outside.tx.borrower)

    tx = transaction_mark_reviewed(trans_id="RKLOUT0001", actor=Actor.system("tests"))
    assert tx.reviewed_at is not None
    tx = transaction_assign(
        trans_id="rkLout0001", loan_number="loan-000403", actor=Actor.borrower("+254722000001")
    )
    assert tx.allocations.get(reversed_at__isnull=True).loan == other
