"""A borrower confirming or moving their own latest payment (payments.services.borrower_moves)."""

from decimal import Decimal as D

import pytest

from core.actors import Actor
from core.exceptions import InvalidState, NotFound
from core.models import AuditEvent, Loan, OutboxMessage
from payments.models import MpesaTransaction, ReviewRequest
from payments.services import borrower_moves as moves
from payments.services import transaction_mark_reviewed
from payments.services.borrower_moves import MoveResult, borrower_payment_confirm, borrower_payment_move
from tests.factories import BorrowerFactory, OfficerFactory
from tests.ussd.conftest import PHONE, borrower_fixture, loans_fixture, make_loan, pay, paybill_fixture  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.USSD_PIN_KEYS = ["k"]


@pytest.fixture
def officer(db):
    return OfficerFactory(phone="+254700111222")


@pytest.fixture
def setup(borrower, loans, paybill):
    return borrower, loans, pay(paybill)


def outstanding(number: str) -> D:
    return Loan.objects.get(loan_number=number).outstanding


def staff_alerts(kind: str) -> list[OutboxMessage]:
    return [m for m in OutboxMessage.objects.filter(user__isnull=False) if m.context.get("kind") == kind]


def test_a_recent_payment_moves_to_another_own_loan_through_the_staff_service(setup, officer):
    borrower, _, tx = setup
    assert outstanding("LOAN-000101") == D("4000.00")

    outcome = borrower_payment_move(borrower=borrower, phone=PHONE, loan_number="loan 102")

    assert outcome == moves.MoveOutcome(MoveResult.MOVED, tx.trans_id, D("1000.00"), "LOAN-000102")
    assert (outstanding("LOAN-000101"), outstanding("LOAN-000102")) == (D("5000.00"), D("7000.00"))
    assigned = AuditEvent.objects.get(action="mpesa.assigned")
    assert (assigned.actor_type, assigned.actor_label, assigned.actor_user) == ("borrower", PHONE, None)
    tx.refresh_from_db()
    assert (tx.status, tx.match_strategy) == ("processed", "manual")
    confirmation = OutboxMessage.objects.get(dedupe_key__startswith="borrower-move:")
    assert confirmation.recipient == PHONE
    assert "moved to LOAN-000102" in confirmation.body and "KES 7,000.00" in confirmation.body
    note = OutboxMessage.objects.get(dedupe_key__startswith="borrower-move-note:")
    assert (note.user, note.context) == (officer, {"kind": "posted", "trans_id": tx.trans_id})
    assert ReviewRequest.objects.count() == 0


def test_a_move_names_the_payment_by_its_code(setup):
    borrower, _, tx = setup
    outcome = borrower_payment_move(
        borrower=borrower, phone=PHONE, trans_id=tx.trans_id.lower(), loan_number="LOAN-000102"
    )
    assert outcome.result == MoveResult.MOVED


def test_moving_to_the_loan_it_is_on_changes_nothing(setup):
    borrower, _, tx = setup
    before = AuditEvent.objects.count()
    outcome = borrower_payment_move(borrower=borrower, phone=PHONE, loan_number="LOAN-000101")
    assert outcome == moves.MoveOutcome(MoveResult.ALREADY_THERE, tx.trans_id, D("1000.00"), "LOAN-000101")
    assert AuditEvent.objects.count() == before
    assert outstanding("LOAN-000101") == D("4000.00")


@pytest.mark.parametrize("loan_number", ["LOAN-000999", "LOAN-000300", "LOAN-000103"])
def test_only_the_borrowers_own_active_loans_are_targets(setup, loan_number):
    borrower = setup[0]
    make_loan(BorrowerFactory(), "LOAN-000300", "100")  # someone else's
    make_loan(borrower, "LOAN-000103", "0", status="paid")
    outcome = borrower_payment_move(borrower=borrower, phone=PHONE, loan_number=loan_number)
    assert outcome.result == MoveResult.NOT_YOUR_LOAN
    assert outstanding("LOAN-000101") == D("4000.00")


def test_a_payment_of_someone_else_is_not_found(setup, paybill):
    borrower, _, _ = setup
    other = BorrowerFactory(phones=["+254733000111"])
    make_loan(other, "LOAN-000500", "900")
    theirs = pay(paybill, trans_id="SLK4H7RT9Z", reference="LOAN-000500", msisdn="254733000111")
    outcome = borrower_payment_move(
        borrower=borrower, phone=PHONE, trans_id=theirs.trans_id, loan_number="LOAN-000102"
    )
    assert outcome.result == MoveResult.NO_PAYMENT
    assert MpesaTransaction.objects.get(trans_id=theirs.trans_id).match_strategy == "bill_reference"


def test_a_borrower_without_payments_has_nothing_to_move(borrower, loans):
    outcome = borrower_payment_move(borrower=borrower, phone=PHONE, loan_number="LOAN-000102")
    assert outcome.result == MoveResult.NO_PAYMENT


def _asks_for_review(borrower, tx, why: str, officer) -> None:
    outcome = borrower_payment_move(borrower=borrower, phone=PHONE, loan_number="LOAN-000102")
    assert outcome.result == MoveResult.REVIEW
    request = ReviewRequest.objects.get()
    assert (request.transaction, request.borrower, request.phone) == (tx, borrower, PHONE)
    assert request.requested_loan.loan_number == "LOAN-000102"
    assert why in request.reason
    [alert] = staff_alerts("review_request")
    assert (alert.user, alert.context) == (officer, {"kind": "review_request", "trans_id": tx.trans_id})
    assert "Review requested" in alert.body and "LOAN-000102" in alert.body


def test_a_payment_older_than_48_hours_goes_to_staff(borrower, loans, paybill, officer):
    tx = pay(paybill, hours_ago=49)
    _asks_for_review(borrower, tx, "more than 48 hours", officer)
    assert outstanding("LOAN-000101") == D("4000.00")


def test_a_payment_staff_already_reviewed_goes_to_staff(setup, officer):
    # Staff looked at where the engine put it and left it there: the borrower no longer moves it alone.
    borrower, _, tx = setup
    transaction_mark_reviewed(trans_id=tx.trans_id, actor=Actor.staff(officer), note="checked")
    _asks_for_review(borrower, tx, "already moved or reviewed", officer)
    # The request is news since that review: staff may mark the payment reviewed again, once.
    tx.refresh_from_db()
    assert tx.review_requested_since_reviewed()
    again = transaction_mark_reviewed(trans_id=tx.trans_id, actor=Actor.staff(officer), note="called them")
    assert not again.review_requested_since_reviewed()
    assert AuditEvent.objects.filter(action="mpesa.reviewed").count() == 2
    with pytest.raises(InvalidState, match="already reviewed"):
        transaction_mark_reviewed(trans_id=tx.trans_id, actor=Actor.staff(officer))


def test_an_unmatched_payment_from_the_borrowers_phone_goes_to_staff(borrower, loans, paybill, officer):
    tx = pay(paybill, reference="rent", msisdn="254799000000")  # nobody's number, no loan named
    assert tx.status == "unmatched"
    MpesaTransaction.objects.filter(pk=tx.pk).update(msisdn="254712345678")  # paid from the borrower's phone
    _asks_for_review(borrower, tx, "unmatched", officer)


def test_a_refused_assignment_goes_to_staff_and_changes_nothing(setup, officer, monkeypatch):
    borrower, _, tx = setup

    def refuse(**kwargs):
        raise InvalidState("credit already spent")

    monkeypatch.setattr(moves, "transaction_assign", refuse)
    _asks_for_review(borrower, tx, "credit already spent", officer)
    assert outstanding("LOAN-000101") == D("4000.00")


def test_staff_are_alerted_once_per_payment_however_often_it_is_asked(borrower, loans, paybill, officer):
    pay(paybill, hours_ago=72)
    for _ in range(3):
        borrower_payment_move(borrower=borrower, phone=PHONE, loan_number="LOAN-000102")
    assert ReviewRequest.objects.count() == 3
    assert len(staff_alerts("review_request")) == 1


def test_confirming_a_payment_is_audited_as_the_borrowers_phone(setup):
    borrower, _, tx = setup
    borrower_payment_confirm(borrower=borrower, phone=PHONE, trans_id=tx.trans_id)
    event = AuditEvent.objects.get(action="mpesa.borrower_confirmed")
    assert (event.actor_type, event.actor_label, event.data) == (
        "borrower",
        PHONE,
        {"trans_id": tx.trans_id, "loans": ["LOAN-000101"]},
    )
    with pytest.raises(NotFound):
        borrower_payment_confirm(borrower=borrower, phone=PHONE, trans_id="NOTMINE123")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_moves_of_one_payment_at_once_move_it_once(borrower, loans, paybill):
    import threading

    from django.db import connection

    tx = pay(paybill)
    barrier = threading.Barrier(2)
    results: list[MoveResult] = []

    def move() -> None:
        try:
            barrier.wait(timeout=10)
            outcome = borrower_payment_move(borrower=borrower, phone=PHONE, loan_number="LOAN-000102")
            results.append(outcome.result)
        finally:
            connection.close()

    threads = [threading.Thread(target=move) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results) == [MoveResult.ALREADY_THERE, MoveResult.MOVED]
    assert (outstanding("LOAN-000101"), outstanding("LOAN-000102")) == (D("5000.00"), D("7000.00"))
    assert AuditEvent.objects.filter(action="mpesa.assigned", object_id=str(tx.pk)).count() == 1
