"""Shared pieces of the borrower-channel tests: a borrower with two loans and a posted payment, and
helpers that post Africa's Talking's form bodies (from ``tests/fixtures/africastalking/``) to the
real endpoints."""

import datetime
from decimal import Decimal as D
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from django.utils import timezone

from payments.models import MpesaTransaction
from payments.services import transaction_process
from tests.cache import clear_test_cache
from tests.factories import BorrowerFactory, LoanFactory, MpesaConfigurationFactory, OfficerFactory
from ussd.clients.sms import is_gsm7

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "africastalking"
PHONE = "+254712345678"
SECRET = "at-callback-secret-5Kq9"


def form_fixture(name: str, **overrides: str) -> bytes:
    """A recorded form body with some fields replaced, encoded the way Africa's Talking sends it."""
    fields = dict(parse_qsl((FIXTURES / name).read_text(), keep_blank_values=True))
    fields.update(overrides)
    return urlencode(fields).encode()


@pytest.fixture(autouse=True)
def _channel_settings(settings, django_db_blocker):
    settings.AFRICASTALKING_CALLBACK_SECRET = SECRET
    settings.USSD_SERVICE_CODES = ["*384*123#"]
    settings.USSD_PIN_KEYS = ["pin-key-test-newest"]
    settings.LENDER_CONTACT_PHONE = "0700 123 456"
    # Sessions live in the cache: each test starts without any (only the run's own keys).
    clear_test_cache(django_db_blocker)
    yield
    clear_test_cache(django_db_blocker)


@pytest.fixture(name="officer")
def officer_fixture(db):
    return OfficerFactory(phone="+254700111222")


@pytest.fixture(name="borrower")
def borrower_fixture(officer):
    return BorrowerFactory(phones=[PHONE], full_name="Amina Wanjiru", loan_officer=officer)


@pytest.fixture(name="paybill")
def paybill_fixture(db):
    return MpesaConfigurationFactory(business_short_code="600984")


def make_loan(borrower, number: str, outstanding: str, *, due_in: int = 10, **extra):
    return LoanFactory(
        borrower=borrower,
        loan_number=number,
        principal_disbursed=D(outstanding),
        principal=D(outstanding),
        due_date=timezone.localdate() + datetime.timedelta(days=due_in),
        **extra,
    )


@pytest.fixture(name="loans")
def loans_fixture(borrower):
    return [
        make_loan(borrower, "LOAN-000101", "5000", due_in=5),
        make_loan(borrower, "LOAN-000102", "8000", due_in=20),
    ]


def pay(
    paybill,
    *,
    trans_id: str = "SLK4H7RT2P",
    amount: str = "1000.00",
    reference: str = "LOAN-000101",
    msisdn: str = "254712345678",
    hours_ago: float = 1,
) -> MpesaTransaction:
    """A payment as a confirmation stores it, then processed by the engine."""
    MpesaTransaction.objects.create(
        trans_id=trans_id,
        transaction_type="Pay Bill",
        trans_time=timezone.now() - datetime.timedelta(hours=hours_ago),
        amount=D(amount),
        business_short_code=paybill.business_short_code,
        bill_reference=reference,
        msisdn=msisdn,
        msisdn_kind="plain",
        first_name="AMINA",
        config=paybill,
    )
    return transaction_process(trans_id=trans_id)


@pytest.fixture(name="post_form")
def post_form_fixture(client, django_capture_on_commit_callbacks):
    """POST a form body to an Africa's Talking endpoint (with the secret unless told otherwise);
    what the request queued on commit runs as after a real commit."""

    def post(path: str, body: bytes, *, secret: str | None = SECRET, **extra):
        url = path if secret is None else f"{path}?secret={secret}"
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data=body, content_type="application/x-www-form-urlencoded", **extra)

    return post


@pytest.fixture(name="dial")
def dial_fixture(post_form):
    """One USSD request of a session: returns the answer's text (``CON ...`` / ``END ...``)."""

    def send(
        text: str, *, session: str = "ATUid_session_1", phone: str = PHONE, code: str = "*384*123#"
    ) -> str:
        response = post_form(
            "/ussd/callback/",
            form_fixture(
                "ussd_request.txt", sessionId=session, phoneNumber=phone, serviceCode=code, text=text
            ),
        )
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        answer = response.content.decode()
        # Every screen: CON/END, then at most 160 GSM-7 characters.
        assert answer.startswith(("CON ", "END ")) and len(answer) <= 164 and is_gsm7(answer), answer
        return answer

    return send
