"""core.services.audit.audited_update: the one way borrower_update and loan_update change fields with
before and after in the audit."""

import datetime

import pytest

from core.actors import Actor
from core.exceptions import InvalidInput
from core.models import AuditEvent, Borrower, Loan
from core.services import borrower_update
from core.services.audit import audited_update
from tests.factories import BorrowerFactory, LoanFactory, OfficerFactory

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")


def test_each_changed_field_is_saved_and_audited_with_before_and_after():
    officer = OfficerFactory(username="officer.wanjiru")
    loan = LoanFactory(due_date=datetime.date(2026, 12, 31), loan_officer=None)

    saved = audited_update(
        loan,
        changes={
            "due_date": datetime.date(2027, 1, 15),
            "loan_officer": officer,
            "disbursed_on": loan.disbursed_on,
        },
        action="loan.updated",
        actor=ACTOR,
        reason="rescheduled",
    )

    stored = Loan.objects.get(pk=loan.pk)
    assert (saved.due_date, stored.due_date, stored.loan_officer) == (
        datetime.date(2027, 1, 15),
        datetime.date(2027, 1, 15),
        officer,
    )
    event = AuditEvent.objects.get()
    assert (event.action, event.loan, event.borrower, event.reason) == (
        "loan.updated",
        stored,
        stored.borrower,
        "rescheduled",
    )
    assert event.data == {  # the unchanged disbursed_on is not there; values as JSON
        "due_date": {"before": "2026-12-31", "after": "2027-01-15"},
        "loan_officer": {"before": None, "after": str(officer)},
    }


def test_nothing_differs_nothing_is_saved_or_audited():
    borrower = BorrowerFactory(full_name="Amina Wekesa")
    updated_at = Borrower.objects.get(pk=borrower.pk).updated_at

    audited_update(borrower, changes={"full_name": "Amina Wekesa"}, action="borrower.updated", actor=ACTOR)

    assert not AuditEvent.objects.exists()
    assert Borrower.objects.get(pk=borrower.pk).updated_at == updated_at


def test_a_borrowers_change_is_linked_to_the_borrower_only():
    borrower = BorrowerFactory(full_name="Amina Wekesa")

    borrower_update(borrower=borrower, changes={"full_name": "Amina W. Wekesa"}, actor=ACTOR)

    event = AuditEvent.objects.get()
    assert (event.action, event.borrower, event.loan) == ("borrower.updated", borrower, None)
    assert event.data == {"full_name": {"before": "Amina Wekesa", "after": "Amina W. Wekesa"}}


def test_a_national_id_taken_by_another_borrower_is_refused_and_nothing_changes():
    BorrowerFactory(national_id="22223333")
    borrower = BorrowerFactory(national_id="44445555", full_name="Amina Wekesa")

    with pytest.raises(InvalidInput, match="national ID already belongs to another borrower"):
        borrower_update(
            borrower=borrower, changes={"national_id": "22223333", "full_name": "Amina W."}, actor=ACTOR
        )

    stored = Borrower.objects.get(pk=borrower.pk)
    assert (stored.national_id, stored.full_name) == ("44445555", "Amina Wekesa")
    assert not AuditEvent.objects.exists()
