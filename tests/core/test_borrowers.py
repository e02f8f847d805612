from decimal import Decimal as D

import pytest

from core.exceptions import InvalidInput, InvalidPhoneNumber, InvalidState
from core.models import AuditEvent, Borrower, BorrowerPhone, CreditEntry, Loan
from core.phones import msisdn_hash
from core.services import (
    borrower_create,
    borrower_credit_add,
    borrower_credit_apply_to_loan,
    borrower_credit_use,
    borrower_phone_add,
)
from tests.factories import BorrowerFactory, LoanFactory

pytestmark = pytest.mark.django_db


def test_create_normalises_phones_first_is_primary_and_hashes_are_kept(system_actor):
    borrower = borrower_create(
        full_name=" Achieng Odhiambo ",
        phones=["0712345678", "+254 110 123 456", "254712345678"],
        national_id="12345678",
        preferred_language="sw",
        actor=system_actor,
    )
    phones = list(borrower.phones.order_by("id").values_list("number", "is_primary", "msisdn_hash"))
    assert phones == [
        ("+254712345678", True, msisdn_hash("+254712345678")),
        ("+254110123456", False, msisdn_hash("+254110123456")),
    ]
    assert borrower.full_name == "Achieng Odhiambo"
    assert borrower.primary_phone.number == "+254712345678"
    assert AuditEvent.objects.filter(borrower=borrower, action="borrower.created").count() == 1


def test_phone_and_national_id_are_unique_across_borrowers(system_actor):
    borrower_create(full_name="A", phones=["0712345678"], national_id="111", actor=system_actor)
    with pytest.raises(InvalidInput, match=r"2547\*\*\*\*\*678"):
        borrower_create(full_name="B", phones=["+254712345678"], actor=system_actor)
    with pytest.raises(InvalidInput, match="national ID"):
        borrower_create(full_name="C", phones=["0722000000"], national_id="111", actor=system_actor)
    with pytest.raises(InvalidPhoneNumber):
        borrower_create(full_name="D", phones=["020 123 4567"], actor=system_actor)
    assert Borrower.objects.count() == 1


def test_borrowers_without_national_id_do_not_collide(system_actor):
    borrower_create(full_name="A", phones=["0712345678"], national_id="", actor=system_actor)
    borrower_create(full_name="B", phones=["0712345679"], actor=system_actor)
    assert Borrower.objects.filter(national_id__isnull=True).count() == 2


def test_hash_follows_the_number_when_it_changes():
    phone = BorrowerFactory().phones.get()
    phone.number = "+254722000000"
    phone.save(update_fields=["number"])
    phone.refresh_from_db()
    assert phone.msisdn_hash == "8556a495c390f3ba95d2bdf6d06436f2fd09f516531f0a7cd9591c60812fa46d"


def test_adding_a_primary_phone_demotes_the_old_one(system_actor):
    borrower = BorrowerFactory(phones=["+254712345678"])
    borrower_phone_add(borrower=borrower, number="0110 123 456", make_primary=True, actor=system_actor)
    assert borrower.primary_phone.number == "+254110123456"
    assert BorrowerPhone.objects.filter(borrower=borrower, is_primary=True).count() == 1
    with pytest.raises(InvalidInput):
        borrower_phone_add(borrower=BorrowerFactory(), number="0712345678", actor=system_actor)


def test_credit_ledger_tracks_the_balance(system_actor):
    borrower = BorrowerFactory()
    borrower_credit_add(borrower=borrower, amount=D("150.00"), reference="RKL51ZDR4F", actor=system_actor)
    borrower_credit_use(borrower=borrower, amount=D("40.00"), reason="refund", actor=system_actor)
    borrower.refresh_from_db()
    assert borrower.credit_balance == D("110.00")
    entries = list(borrower.credit_entries.order_by("id").values_list("amount", "balance_after", "reference"))
    assert entries == [(D("150.00"), D("150.00"), "RKL51ZDR4F"), (D("-40.00"), D("110.00"), "")]
    with pytest.raises(InvalidState, match="credit balance"):
        borrower_credit_use(borrower=borrower, amount=D("110.01"), actor=system_actor)
    assert CreditEntry.objects.count() == 2
    assert AuditEvent.objects.filter(action__startswith="credit.").count() == 2


def test_credit_pays_a_loan_up_to_its_outstanding(system_actor):
    loan = LoanFactory(principal_disbursed=D("100.00"), principal=D("100.00"))
    borrower_credit_add(borrower=loan.borrower, amount=D("250.00"), actor=system_actor)
    result = borrower_credit_apply_to_loan(
        loan=loan, amount=D("250.00"), actor=system_actor, reason="use credit"
    )
    loan.refresh_from_db()
    loan.borrower.refresh_from_db()
    assert result.applied == D("100.00")
    assert loan.status == Loan.Status.PAID
    assert loan.borrower.credit_balance == D("150.00")
    assert result.repayment.source == "credit"


def test_reversing_a_posting_paid_from_credit_puts_the_money_back_in_credit(system_actor):
    from core.services import repayment_reverse

    loan = LoanFactory(principal_disbursed=D("500.00"), principal=D("500.00"))
    borrower_credit_add(borrower=loan.borrower, amount=D("350.00"), actor=system_actor)
    posting = borrower_credit_apply_to_loan(
        loan=loan, amount=D("350.00"), actor=system_actor, reason="use credit"
    ).repayment
    repayment_reverse(repayment=posting, actor=system_actor, reason="applied to the wrong loan")
    loan.refresh_from_db()
    loan.borrower.refresh_from_db()
    assert (loan.outstanding, loan.borrower.credit_balance) == (D("500.00"), D("350.00"))
    assert list(loan.borrower.credit_entries.order_by("id").values_list("amount", flat=True)) == [
        D("350.00"),
        D("-350.00"),
        D("350.00"),
    ]
