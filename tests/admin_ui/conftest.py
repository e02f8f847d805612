"""A small portfolio for the staff pages: two officers, each with a borrower and a loan, an admin,
and a helper that stores a payment (optionally processed) the way the engine would."""

import datetime
from decimal import Decimal as D

import pytest

from payments.models import MpesaConfiguration, MpesaTransaction
from payments.parsing import NAIROBI
from payments.services import transaction_process
from tests.cache import clear_test_cache
from tests.factories import BorrowerFactory, LoanFactory, MpesaConfigurationFactory, OfficerFactory

OWN_PHONE = "+254722000000"
OTHER_PHONE = "+254733000000"


@pytest.fixture(autouse=True)
def _fresh_cache(django_db_blocker):
    # Daraja tokens and emulator registrations live in the cache; no test may see another's.
    clear_test_cache(django_db_blocker)
    yield
    clear_test_cache(django_db_blocker)


@pytest.fixture
def mpesa_config(db) -> MpesaConfiguration:
    return MpesaConfigurationFactory(
        consumer_key="CK-plain-consumer-key-0123456789", consumer_secret="CS-plain-consumer-secret-9876543210"
    )


@pytest.fixture
def officer(db):
    return OfficerFactory(username="officer-own")


@pytest.fixture
def other_officer(db):
    return OfficerFactory(username="officer-other")


@pytest.fixture
def own_borrower(officer):
    return BorrowerFactory(full_name="Nicholas Kiprono", phones=[OWN_PHONE], loan_officer=officer)


@pytest.fixture
def other_borrower(other_officer):
    return BorrowerFactory(full_name="Achieng Otieno", phones=[OTHER_PHONE], loan_officer=other_officer)


@pytest.fixture
def own_loan(own_borrower):
    return LoanFactory(borrower=own_borrower, loan_number="LOAN-000101", principal_disbursed=D("5000.00"))


@pytest.fixture
def other_loan(other_borrower):
    return LoanFactory(borrower=other_borrower, loan_number="LOAN-000201", principal_disbursed=D("8000.00"))


def nairobi(day: datetime.date, hour: int = 12, minute: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=NAIROBI)


@pytest.fixture
def make_payment(mpesa_config):
    """``make_payment(trans_id, ...)``: a stored payment; ``process=True`` runs the real engine on it."""

    def make(trans_id: str, *, amount="1000.00", process=False, **fields) -> MpesaTransaction:
        defaults = {
            "transaction_type": "Pay Bill",
            "trans_time": nairobi(datetime.date(2026, 3, 10)),
            "business_short_code": mpesa_config.business_short_code,
            "bill_reference": "",
            "msisdn": "",
            "msisdn_kind": MpesaTransaction.MsisdnKind.MISSING,
            "first_name": "NICHOLAS",
            "config": mpesa_config,
        }
        tx = MpesaTransaction.objects.create(trans_id=trans_id, amount=D(amount), **{**defaults, **fields})
        return transaction_process(trans_id=trans_id) if process else tx

    return make
