import datetime
from decimal import Decimal as D

import pytest
from django.db import IntegrityError, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from core.actors import Actor
from core.exceptions import InvalidAmount, InvalidInput, InvalidState
from core.models import AuditEvent, Loan, Repayment
from core.services import (
    loan_create,
    loan_next_number,
    loan_write_off,
    repayment_apply,
    repayment_post,
    repayment_reverse,
)
from core.services.loans import loan_number_counter_raise_to
from tests.factories import BorrowerFactory, LoanFactory

pytestmark = pytest.mark.django_db

DUE = datetime.date(2026, 12, 31)


def make_loan(**amounts) -> Loan:
    defaults = {"principal_disbursed": D("1000.00"), "principal": D("1000.00")}
    return LoanFactory(**{**defaults, **amounts})


def test_new_loans_get_consecutive_numbers_and_are_audited(officer):
    borrower = BorrowerFactory(loan_officer=officer)
    actor = Actor.staff(officer)
    first = loan_create(borrower=borrower, principal=D("5000"), interest=D("500"), due_date=DUE, actor=actor)
    second = loan_create(borrower=borrower, principal="2500.00", due_date=DUE, actor=actor)
    assert (first.loan_number, second.loan_number) == ("LOAN-000001", "LOAN-000002")
    assert first.outstanding == D("5500.00")
    assert first.loan_officer == officer  # inherited from the borrower
    event = AuditEvent.objects.get(loan=first, action="loan.created")
    assert (event.actor_type, event.actor_user, event.amount) == ("staff", officer, D("5500.00"))


def test_next_number_skips_numbers_taken_by_imports(system_actor):
    LoanFactory(loan_number="LOAN-000001")
    LoanFactory(loan_number="LOAN-000002")
    assert loan_next_number() == "LOAN-000003"
    loan_number_counter_raise_to(120)
    assert loan_next_number() == "LOAN-000121"
    loan_number_counter_raise_to(5)  # never goes backwards
    assert loan_next_number() == "LOAN-000122"


def test_loan_create_refuses_bad_amounts_and_taken_numbers(system_actor):
    borrower = BorrowerFactory()
    with pytest.raises(InvalidAmount):
        loan_create(borrower=borrower, principal=D("0"), due_date=DUE, actor=system_actor)
    with pytest.raises(InvalidAmount):
        loan_create(borrower=borrower, principal=D("10"), fees=D("-1"), due_date=DUE, actor=system_actor)
    LoanFactory(loan_number="LOAN-000777")
    with pytest.raises(InvalidInput, match="already in use"):
        loan_create(
            borrower=borrower, principal=D("10"), due_date=DUE, actor=system_actor, loan_number="LOAN-000777"
        )


def test_posting_applies_the_waterfall_and_records_the_split(system_actor):
    loan = make_loan(penalties=D("100.00"), fees=D("50.00"), interest=D("150.00"))
    result = repayment_post(
        loan=loan, amount=D("400.00"), actor=system_actor, source="mpesa", reference="RKL51ZDR4F"
    )
    loan.refresh_from_db()
    assert (loan.penalties, loan.fees, loan.interest, loan.principal) == (D("0"), D("0"), D("0"), D("900.00"))
    assert loan.status == Loan.Status.ACTIVE
    assert result.applied == D("400.00") and result.excess == D("0.00")
    repayment = Repayment.objects.get()
    assert repayment.split == {
        "penalties": D("100.00"),
        "fees": D("50.00"),
        "interest": D("150.00"),
        "principal": D("100.00"),
    }
    assert (repayment.amount, repayment.reference, repayment.kind) == (D("400.00"), "RKL51ZDR4F", "posting")
    event = AuditEvent.objects.get(action="repayment.posted")
    assert event.object_id == str(repayment.pk)
    assert event.data["outstanding_after"] == "900.00"


def test_paying_everything_marks_the_loan_paid_and_returns_the_excess(system_actor):
    loan = make_loan(interest=D("100.00"))
    result = repayment_post(loan=loan, amount=D("1250.00"), actor=system_actor, source="mpesa")
    loan.refresh_from_db()
    assert loan.outstanding == 0
    assert loan.status == Loan.Status.PAID
    assert loan.paid_at is not None
    assert (result.applied, result.excess) == (D("1100.00"), D("150.00"))
    assert result.repayment.amount == D("1100.00")


@pytest.mark.django_db(transaction=True)
def test_applying_outside_a_transaction_is_refused(system_actor):
    loan = LoanFactory(principal_disbursed=D("1000"), principal=D("1000"))
    with pytest.raises(TransactionManagementError):
        repayment_apply(loan=loan, amount=D("50"), actor=system_actor, source="mpesa")
    assert not Repayment.objects.exists()


def test_applying_to_a_locked_loan_posts_as_posting_does(system_actor):
    loan = LoanFactory(principal_disbursed=D("1000"), principal=D("1000"), interest=D("100"))
    with transaction.atomic():
        locked = Loan.objects.select_for_update().get(pk=loan.pk)
        result = repayment_apply(
            loan=locked, amount=D("150"), actor=system_actor, source="mpesa", reference="R1"
        )

    assert result.loan is locked and (result.applied, result.excess) == (D("150"), D("0"))
    loan.refresh_from_db()
    assert (loan.interest, loan.principal) == (D("0"), D("950"))
    assert Repayment.objects.get().interest == D("100")
    assert AuditEvent.objects.filter(action="repayment.posted", loan=loan).count() == 1


@pytest.mark.parametrize("amount", [D("0"), D("-5"), "abc"])
def test_posting_refuses_non_positive_amounts(system_actor, amount):
    loan = make_loan()
    with pytest.raises(InvalidAmount):
        repayment_post(loan=loan, amount=amount, actor=system_actor, source="manual")
    assert not Repayment.objects.exists()


@pytest.mark.parametrize("status", [Loan.Status.WRITTEN_OFF])
def test_posting_to_a_loan_that_is_not_active_is_refused(system_actor, status):
    loan = make_loan(status=status)
    with pytest.raises(InvalidState, match="not active"):
        repayment_post(loan=loan, amount=D("10"), actor=system_actor, source="manual")


def test_posting_to_a_paid_loan_is_refused(system_actor):
    loan = make_loan()
    repayment_post(loan=loan, amount=D("1000"), actor=system_actor, source="manual")
    with pytest.raises(InvalidState, match="paid"):
        repayment_post(loan=loan, amount=D("10"), actor=system_actor, source="manual")


def test_reversal_restores_the_split_exactly_and_reopens_the_loan(officer):
    actor = Actor.staff(officer)
    loan = make_loan(penalties=D("30.00"), fees=D("20.00"), interest=D("50.00"))
    before = (loan.penalties, loan.fees, loan.interest, loan.principal)
    posting = repayment_post(loan=loan, amount=D("1100.00"), actor=actor, source="mpesa").repayment
    loan.refresh_from_db()
    assert loan.status == Loan.Status.PAID

    reversal = repayment_reverse(repayment=posting, actor=actor, reason="paid to the wrong loan")

    loan.refresh_from_db()
    assert (loan.penalties, loan.fees, loan.interest, loan.principal) == before
    assert loan.status == Loan.Status.ACTIVE and loan.paid_at is None
    assert reversal.kind == Repayment.Kind.REVERSAL and reversal.reversal_of == posting
    assert reversal.split == posting.split
    assert Repayment.objects.count() == 2  # both records are kept
    posting.refresh_from_db()
    assert posting.is_reversed
    event = AuditEvent.objects.get(action="repayment.reversed")
    assert (event.actor_user, event.reason, event.amount) == (officer, "paid to the wrong loan", D("1100.00"))


def test_reversal_after_a_later_posting_keeps_the_balance_exact(system_actor):
    loan = make_loan(interest=D("100.00"))
    first = repayment_post(loan=loan, amount=D("300"), actor=system_actor, source="mpesa").repayment
    repayment_post(loan=loan, amount=D("200"), actor=system_actor, source="mpesa")
    repayment_reverse(repayment=first, actor=system_actor, reason="bounced")
    loan.refresh_from_db()
    assert loan.outstanding == D("1100.00") - D("200.00")
    assert (loan.interest, loan.principal) == (D("100.00"), D("800.00"))


def test_a_posting_is_reversed_once_and_reversals_cannot_be_reversed(system_actor):
    loan = make_loan()
    posting = repayment_post(loan=loan, amount=D("100"), actor=system_actor, source="mpesa").repayment
    reversal = repayment_reverse(repayment=posting, actor=system_actor, reason="duplicate")
    with pytest.raises(InvalidState, match="already reversed"):
        repayment_reverse(repayment=posting, actor=system_actor, reason="again")
    with pytest.raises(InvalidState, match="only a posting"):
        repayment_reverse(repayment=reversal, actor=system_actor, reason="undo the undo")
    with pytest.raises(InvalidInput, match="reason"):
        repayment_reverse(repayment=posting, actor=system_actor, reason="  ")
    loan.refresh_from_db()
    assert loan.outstanding == D("1000.00")


def test_write_off_needs_a_reason_and_an_active_loan(system_actor):
    loan = make_loan()
    with pytest.raises(InvalidInput):
        loan_write_off(loan=loan, actor=system_actor, reason="")
    loan_write_off(loan=loan, actor=system_actor, reason="borrower deceased")
    loan.refresh_from_db()
    assert loan.status == Loan.Status.WRITTEN_OFF and loan.outstanding == D("1000.00")
    with pytest.raises(InvalidState):
        loan_write_off(loan=loan, actor=system_actor, reason="again")


def test_database_refuses_negative_balances_and_paid_loans_with_money_outstanding():
    loan = make_loan()
    with pytest.raises(IntegrityError), transaction.atomic():
        Loan.objects.filter(pk=loan.pk).update(principal=D("-1.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Loan.objects.filter(pk=loan.pk).update(status=Loan.Status.PAID)


def test_database_refuses_a_repayment_whose_split_does_not_add_up():
    loan = make_loan()
    with pytest.raises(IntegrityError), transaction.atomic():
        Repayment.objects.create(loan=loan, amount=D("100"), principal=D("90"), source="manual")


def test_overdue_is_derived_from_the_due_date():
    assert make_loan(due_date=timezone.localdate() - datetime.timedelta(days=1)).is_overdue
    assert not make_loan(due_date=timezone.localdate()).is_overdue
