"""The M-Pesa REST API: the payment list and its filters, the detail, staff actions through the real
services, portfolio scoping, admin-only reversal, errors, and the statistics endpoint."""

import datetime
from decimal import Decimal as D

import pytest
from django.test import Client
from django.utils import timezone

from core.models import AuditEvent, Loan, OutboxMessage, Repayment
from core.phones import msisdn_hash
from payments.filters import transactions_filter
from payments.models import Allocation, MpesaTransaction
from payments.parsing import NAIROBI
from payments.services import transaction_process
from tests.core.test_api_tokens import client_for
from tests.factories import AdminFactory, BorrowerFactory, LoanFactory, OfficerFactory
from tests.payments.test_processing import stored_payment

pytestmark = pytest.mark.django_db

JSON = "application/json"


def nairobi(*parts: int) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=NAIROBI)


def paid(config, trans_id: str, **fields) -> MpesaTransaction:
    """A stored payment processed by the real engine, so its status and allocations are real."""
    return transaction_process(trans_id=stored_payment(config, trans_id=trans_id, **fields).trans_id)


def trans_ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [item["trans_id"] for item in response.json()["items"]]


@pytest.fixture
def admin_api() -> Client:
    return client_for(AdminFactory())


@pytest.fixture
def officer_api(officer) -> Client:
    return client_for(officer)


@pytest.fixture
def other_officer(db):
    return OfficerFactory()


@pytest.fixture
def borrower(officer):
    return BorrowerFactory(
        full_name="Wanjiku Kamau", loan_officer=officer, phones=["+254712345678", "+254733000111"]
    )


@pytest.fixture
def loan(borrower):
    return LoanFactory(
        borrower=borrower, loan_number="LOAN-000501", principal_disbursed=D("5000.00"), principal=D("5000.00")
    )


@pytest.fixture
def other_loan(other_officer):
    """A loan in another officer's portfolio."""
    return LoanFactory(
        borrower=BorrowerFactory(
            full_name="Otieno Ouma", loan_officer=other_officer, phones=["+254755000222"]
        ),
        loan_number="LOAN-000601",
        principal_disbursed=D("9000.00"),
        principal=D("9000.00"),
    )


# --- GET /api/v1/transactions: filters -----------------------------------------------------------


@pytest.fixture
def payers(mpesa_config, loan, other_loan):
    """Payments from a payer who is no borrower (plain and hashed MSISDN), one by our borrower's
    loan number with no MSISDN, and one that has nothing to do with any of them."""
    return {
        "plain": paid(
            mpesa_config,
            "QPLAIN0001",
            msisdn="254799000001",
            msisdn_kind="plain",
            bill_reference="LOAN-000601",
        ),
        "hashed": paid(
            mpesa_config,
            "QHASHED001",
            msisdn=msisdn_hash("+254799000001"),
            msisdn_kind="hashed",
            bill_reference="LOAN-000601",
        ),
        "hashed_upper": paid(
            mpesa_config,
            "QHASHED002",
            msisdn=msisdn_hash("+254799000001").upper(),
            msisdn_kind="hashed",
            bill_reference="LOAN-000601",
        ),
        "owner": paid(mpesa_config, "QOWNER0001", bill_reference="LOAN-000501"),
        "stranger": paid(
            mpesa_config, "QSTRANGE01", msisdn="254788000009", msisdn_kind="plain", bill_reference="rent"
        ),
    }


@pytest.mark.parametrize("phone", ["0799000001", "+254 799 000 001", "254799000001", "799000001"])
def test_phone_matches_plain_and_hashed_msisdns_in_any_form(admin_api, payers, phone):
    response = admin_api.get("/api/v1/transactions", {"phone": phone})

    assert sorted(trans_ids(response)) == ["QHASHED001", "QHASHED002", "QPLAIN0001"]


def test_phone_matches_payments_of_the_borrower_who_owns_it(admin_api, payers):
    # Neither MSISDN nor bill reference holds +254733000111: the payment was matched by loan number
    # to the borrower whose second phone this is.
    response = admin_api.get("/api/v1/transactions", {"phone": "0733 000 111"})

    assert trans_ids(response) == ["QOWNER0001"]


def test_phone_filter_does_not_repeat_a_payment_matched_both_ways(mpesa_config, admin_api, loan):
    paid(mpesa_config, "QBOTH00001", msisdn="254712345678", msisdn_kind="plain", bill_reference="LOAN-000501")

    response = admin_api.get("/api/v1/transactions", {"phone": "0712345678"})

    assert trans_ids(response) == ["QBOTH00001"]
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("phone", "detail"),
    [
        ("12345", "'*****' is not a Kenyan mobile number"),
        ("0202123456", "'2542*****456' is not a Kenyan mobile number"),
        ("phone", "'phone' is not a phone number"),
    ],
)
def test_bad_phone_is_422_with_the_reason(admin_api, payers, phone, detail):
    response = admin_api.get("/api/v1/transactions", {"phone": phone})

    assert response.status_code == 422
    assert response.json() == {"detail": detail}


@pytest.fixture
def amounts(mpesa_config):
    for trans_id, amount in [("QAMOUNT100", "100.00"), ("QAMOUNT250", "250.50"), ("QAMOUNT999", "1000.00")]:
        paid(mpesa_config, trans_id, amount=D(amount), bill_reference="rent")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"min_amount": "250.50"}, ["QAMOUNT250", "QAMOUNT999"]),
        ({"max_amount": "250.50"}, ["QAMOUNT100", "QAMOUNT250"]),
        ({"min_amount": "100", "max_amount": "250.49"}, ["QAMOUNT100"]),
        ({"min_amount": "1,000"}, ["QAMOUNT999"]),
        ({"min_amount": "1000.01"}, []),
    ],
)
def test_amount_filters_are_inclusive(admin_api, amounts, query, expected):
    response = admin_api.get("/api/v1/transactions", query)

    assert sorted(trans_ids(response)) == expected


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ({"min_amount": "abc"}, "invalid input: min_amount: Value error, amount 'abc' is not a number"),
        (
            {"max_amount": "10.001"},
            "invalid input: max_amount: Value error, amount '10.001' has more than two decimal places",
        ),
        ({"min_amount": "500", "max_amount": "100"}, "min_amount 500.00 is more than max_amount 100.00"),
    ],
)
def test_bad_amount_is_422(admin_api, amounts, query, detail):
    response = admin_api.get("/api/v1/transactions", query)

    assert response.status_code == 422
    assert response.json() == {"detail": detail}


@pytest.fixture
def around_midnight(mpesa_config):
    """Payments either side of the two Nairobi midnights that bound 10 March 2026 (21:00 UTC the
    evening before), so a filter on UTC days would pick the wrong ones."""
    for trans_id, when in [
        ("QDAY09LATE", nairobi(2026, 3, 9, 23, 59, 59)),
        ("QDAY10ZERO", nairobi(2026, 3, 10, 0, 0, 0)),
        ("QDAY10LATE", nairobi(2026, 3, 10, 23, 59, 59)),
        ("QDAY11ZERO", nairobi(2026, 3, 11, 0, 0, 0)),
    ]:
        paid(mpesa_config, trans_id, trans_time=when, bill_reference="rent")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"date_from": "2026-03-10", "date_to": "2026-03-10"}, ["QDAY10LATE", "QDAY10ZERO"]),
        ({"date_from": "2026-03-10"}, ["QDAY11ZERO", "QDAY10LATE", "QDAY10ZERO"]),
        ({"date_to": "2026-03-09"}, ["QDAY09LATE"]),
        ({"date_from": "2026-03-12"}, []),
    ],
)
def test_dates_are_inclusive_nairobi_days(admin_api, around_midnight, query, expected):
    response = admin_api.get("/api/v1/transactions", query)

    assert trans_ids(response) == expected


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        (
            {"date_from": "2026-13-01"},
            "invalid input: date_from: Input should be a valid date or datetime, "
            "month value is outside expected range of 1-12",
        ),
        (
            {"date_from": "2026-03-11", "date_to": "2026-03-10"},
            "date_from 2026-03-11 is after date_to 2026-03-10",
        ),
    ],
)
def test_bad_date_is_422(admin_api, around_midnight, query, detail):
    response = admin_api.get("/api/v1/transactions", query)

    assert response.status_code == 422
    assert response.json() == {"detail": detail}


def test_status_filter(admin_api, payers):
    assert trans_ids(admin_api.get("/api/v1/transactions", {"status": "unmatched"})) == ["QSTRANGE01"]
    assert len(trans_ids(admin_api.get("/api/v1/transactions", {"status": "processed"}))) == 4
    assert trans_ids(admin_api.get("/api/v1/transactions", {"status": "failed"})) == []


def test_source_filter(admin_api, mpesa_config):
    paid(mpesa_config, "QSRCCALL01", bill_reference="rent")
    paid(mpesa_config, "QSRCPULL01", bill_reference="rent", source="pull")
    paid(mpesa_config, "QSRCSTMT01", bill_reference="rent", source="statement")

    assert trans_ids(admin_api.get("/api/v1/transactions", {"source": "pull"})) == ["QSRCPULL01"]
    assert trans_ids(admin_api.get("/api/v1/transactions", {"source": "callback"})) == ["QSRCCALL01"]
    assert trans_ids(admin_api.get("/api/v1/transactions", {"source": "status_query"})) == []
    response = admin_api.get("/api/v1/transactions", {"source": "carrier pigeon"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "invalid input: source: Input should be 'callback', 'pull', 'statement' or 'status_query'"
    }


def test_unknown_status_is_422(admin_api):
    response = admin_api.get("/api/v1/transactions", {"status": "lost"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": "invalid input: status: Input should be 'received', 'processed', 'unmatched', "
        "'failed', 'held' or 'reversed'"
    }


@pytest.mark.parametrize("trans_id", ["QOWNER0001", "qowner0001", " QOWNER0001 "])
def test_trans_id_filter_is_exact_in_any_case(admin_api, payers, trans_id):
    assert trans_ids(admin_api.get("/api/v1/transactions", {"trans_id": trans_id})) == ["QOWNER0001"]


def test_trans_id_filter_does_not_match_part_of_a_receipt(admin_api, payers):
    assert trans_ids(admin_api.get("/api/v1/transactions", {"trans_id": "QOWNER"})) == []


def test_filters_combine(admin_api, payers):
    response = admin_api.get("/api/v1/transactions", {"phone": "0799000001", "trans_id": "QHASHED002"})

    assert trans_ids(response) == ["QHASHED002"]


def test_filter_function_treats_blank_form_fields_as_no_filter(payers):
    # The staff pages pass form values straight through; an untouched field is "".
    everything = MpesaTransaction.objects.all()

    filtered = transactions_filter(
        everything, status="", phone=" ", trans_id="", min_amount="", max_amount="", date_from="", date_to=""
    )

    assert filtered.count() == 5


def test_filter_function_parses_text_from_forms(around_midnight):
    filtered = transactions_filter(
        MpesaTransaction.objects.all(), status="Unmatched", date_from="2026-03-10", date_to="2026-03-10"
    )

    assert sorted(filtered.values_list("trans_id", flat=True)) == ["QDAY10LATE", "QDAY10ZERO"]


# --- GET /api/v1/transactions: pagination and the item ------------------------------------------


def test_limit_offset_pagination_newest_first(mpesa_config, admin_api):
    for day in range(1, 6):
        paid(
            mpesa_config, f"QPAGE0000{day}", trans_time=nairobi(2026, 4, day, 9, 0, 0), bill_reference="rent"
        )

    response = admin_api.get("/api/v1/transactions", {"limit": 2, "offset": 1})

    assert response.json()["count"] == 5
    assert trans_ids(response) == ["QPAGE00004", "QPAGE00003"]
    assert trans_ids(admin_api.get("/api/v1/transactions", {"limit": 2, "offset": 4})) == ["QPAGE00001"]


def test_list_item_body(mpesa_config, admin_api, loan, borrower):
    tx = paid(
        mpesa_config,
        "QITEM00001",
        amount=D("1250.5"),
        trans_time=nairobi(2026, 3, 10, 8, 30, 0),
        msisdn="254712345678",
        msisdn_kind="plain",
        bill_reference="loan 501",
    )
    assert tx.status == "processed"

    response = admin_api.get("/api/v1/transactions")

    assert response.json() == {
        "count": 1,
        "items": [
            {
                "trans_id": "QITEM00001",
                "amount": "1250.50",
                "trans_time": "2026-03-10T05:30:00Z",
                "status": "processed",
                "source": "callback",
                "identified_by": "bill_reference",
                "match_strategy": "bill_reference",
                "bill_reference": "loan 501",
                "borrower": {"id": borrower.pk, "name": "Wanjiku Kamau", "phone": "2547*****678"},
                "msisdn": "2547*****678",
                "reviewed": False,
                "held_reason": "",
            }
        ],
    }


def test_list_query_count_does_not_grow_with_rows(
    mpesa_config, admin_api, loan, django_assert_max_num_queries
):
    for n in range(8):
        paid(mpesa_config, f"QMANY0000{n}", bill_reference="LOAN-000501", amount=D("10"))

    # Token lookup and last-used stamp, count, page, the borrowers' phones.
    with django_assert_max_num_queries(6):
        assert len(trans_ids(admin_api.get("/api/v1/transactions"))) == 8


# --- GET /api/v1/transactions/{trans_id} -----------------------------------------------------------


def test_detail_full_body(mpesa_config, admin_api, borrower):
    small = LoanFactory(borrower=borrower, loan_number="LOAN-000701", principal_disbursed=D("500.00"))
    tx = paid(
        mpesa_config,
        "QDETAIL001",
        amount=D("800.00"),
        trans_time=nairobi(2026, 3, 10, 8, 30, 0),
        msisdn=msisdn_hash("+254712345678"),
        msisdn_kind="hashed",
        bill_reference="LOAN-000701",
        middle_name="K",
        last_name="KAMAU",
    )
    # Pin the engine's clock readings so the body is exact.
    MpesaTransaction.objects.filter(pk=tx.pk).update(
        received_at=datetime.datetime(2026, 3, 10, 5, 30, 2, tzinfo=datetime.UTC),
        processed_at=datetime.datetime(2026, 3, 10, 5, 30, 3, tzinfo=datetime.UTC),
        processing_ms=41,
    )
    tx.refresh_from_db()
    assert tx.notes  # what the matcher said, kept for people

    response = admin_api.get("/api/v1/transactions/QDETAIL001")

    assert response.status_code == 200
    assert response.json() == {
        "trans_id": "QDETAIL001",
        "amount": "800.00",
        "trans_time": "2026-03-10T05:30:00Z",
        "status": "processed",
        "source": "callback",
        "identified_by": "bill_reference",
        "match_strategy": "bill_reference",
        "bill_reference": "LOAN-000701",
        "borrower": {"id": borrower.pk, "name": "Wanjiku Kamau", "phone": "2547*****678"},
        "msisdn": "hashed number",
        "reviewed": False,
        "held_reason": "",
        "allocations": [
            {"loan_number": "LOAN-000701", "target": "loan", "amount": "500.00", "reversed": False},
            {"loan_number": None, "target": "credit", "amount": "300.00", "reversed": False},
        ],
        "notes": tx.notes,
        "attempts": 1,
        "last_error": "",
        "received_at": "2026-03-10T05:30:02Z",
        "processed_at": "2026-03-10T05:30:03Z",
        "processing_ms": 41,
        "payer_name": "NICHOLAS K KAMAU",
    }
    small.refresh_from_db()
    assert small.status == Loan.Status.PAID


def test_detail_of_an_unknown_payment_is_404(admin_api):
    response = admin_api.get("/api/v1/transactions/QNOSUCH001")

    assert response.status_code == 404
    assert response.json() == {"detail": "no M-Pesa transaction QNOSUCH001"}


def test_detail_query_count(mpesa_config, admin_api, loan, django_assert_max_num_queries):
    paid(mpesa_config, "QCOUNT0001", bill_reference="LOAN-000501")

    with django_assert_max_num_queries(5):
        assert admin_api.get("/api/v1/transactions/QCOUNT0001").status_code == 200


# --- staff actions ----------------------------------------------------------------------------------


def test_reprocess_through_the_api_posts_once_the_loan_exists(mpesa_config, admin_api, borrower):
    tx = paid(mpesa_config, "QREPROC001", bill_reference="LOAN-000777", amount=D("1200.00"))
    assert tx.status == "unmatched"
    late = LoanFactory(borrower=borrower, loan_number="LOAN-000777", principal_disbursed=D("3000.00"))

    response = admin_api.post(
        "/api/v1/transactions/QREPROC001/reprocess", {"reason": "loan imported late"}, content_type=JSON
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["match_strategy"], body["attempts"]) == ("processed", "bill_reference", 2)
    assert body["allocations"] == [
        {"loan_number": "LOAN-000777", "target": "loan", "amount": "1200.00", "reversed": False}
    ]
    late.refresh_from_db()
    assert late.outstanding == D("1800.00")
    assert MpesaTransaction.objects.get(trans_id="QREPROC001").status == "processed"


def test_reprocess_without_a_body(mpesa_config, admin_api):
    paid(mpesa_config, "QREPROC002", bill_reference="rent")

    response = admin_api.post("/api/v1/transactions/QREPROC002/reprocess", b"", content_type=JSON)

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["attempts"]) == ("unmatched", 2)


def test_reprocessing_a_processed_payment_is_409(mpesa_config, admin_api, loan):
    paid(mpesa_config, "QREPROC003", bill_reference="LOAN-000501")

    response = admin_api.post("/api/v1/transactions/QREPROC003/reprocess", {}, content_type=JSON)

    assert response.status_code == 409
    assert response.json() == {
        "detail": "QREPROC003 is processed; only received, failed or unmatched payments are reprocessed"
    }
    assert MpesaTransaction.objects.get(trans_id="QREPROC003").attempts == 1


def test_assign_an_unmatched_payment_through_the_api(mpesa_config, admin_api, loan, borrower):
    paid(mpesa_config, "QASSIGN001", bill_reference="rent", amount=D("1500.00"))

    response = admin_api.post(
        "/api/v1/transactions/QASSIGN001/assign",
        {"loan_number": " LOAN-000501 ", "reason": "borrower called"},
        content_type=JSON,
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["identified_by"], body["match_strategy"], body["reviewed"]) == (
        "processed",
        "manual",
        "manual",
        True,
    )
    assert body["borrower"] == {"id": borrower.pk, "name": "Wanjiku Kamau", "phone": "2547*****678"}
    assert body["allocations"] == [
        {"loan_number": "LOAN-000501", "target": "loan", "amount": "1500.00", "reversed": False}
    ]
    loan.refresh_from_db()
    assert loan.outstanding == D("3500.00")


def test_assign_to_an_unknown_loan_is_404_and_changes_nothing(mpesa_config, admin_api):
    paid(mpesa_config, "QASSIGN002", bill_reference="rent")

    response = admin_api.post(
        "/api/v1/transactions/QASSIGN002/assign", {"loan_number": "LOAN-999999"}, content_type=JSON
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "no loan numbered LOAN-999999"}
    assert MpesaTransaction.objects.get(trans_id="QASSIGN002").status == "unmatched"


def test_assign_to_a_paid_loan_is_409(mpesa_config, admin_api, borrower):
    LoanFactory(borrower=borrower, loan_number="LOAN-000801", status=Loan.Status.PAID, principal=D("0"))
    paid(mpesa_config, "QASSIGN003", bill_reference="rent")

    response = admin_api.post(
        "/api/v1/transactions/QASSIGN003/assign", {"loan_number": "LOAN-000801"}, content_type=JSON
    )

    assert response.status_code == 409
    assert response.json() == {"detail": "LOAN-000801 is paid, not active"}


def test_assign_without_loan_number_is_422(mpesa_config, admin_api):
    paid(mpesa_config, "QASSIGN004", bill_reference="rent")

    response = admin_api.post("/api/v1/transactions/QASSIGN004/assign", {"reason": "x"}, content_type=JSON)

    assert response.status_code == 422
    assert response.json() == {"detail": "invalid input: loan_number: Field required"}


def test_review_once_then_409(mpesa_config, admin_api):
    paid(mpesa_config, "QREVIEW001", bill_reference="rent")

    first = admin_api.post(
        "/api/v1/transactions/QREVIEW001/review", {"note": "refunded by bank"}, content_type=JSON
    )
    second = admin_api.post("/api/v1/transactions/QREVIEW001/review", {}, content_type=JSON)

    assert first.status_code == 200
    assert first.json()["reviewed"] is True
    assert first.json()["notes"][-1].endswith(": refunded by bank")
    assert (second.status_code, second.json()) == (409, {"detail": "QREVIEW001 was already reviewed"})
    assert MpesaTransaction.objects.needing_attention().count() == 0


def test_admin_reverses_a_payment(mpesa_config, admin_api, loan):
    paid(mpesa_config, "QREVERS001", bill_reference="LOAN-000501", amount=D("700.00"))
    loan.refresh_from_db()
    assert loan.outstanding == D("4300.00")

    response = admin_api.post(
        "/api/v1/transactions/QREVERS001/reverse", {"reason": "Safaricom reversal"}, content_type=JSON
    )

    assert response.status_code == 200
    assert response.json()["status"] == "reversed"
    assert response.json()["allocations"] == [
        {"loan_number": "LOAN-000501", "target": "loan", "amount": "700.00", "reversed": True}
    ]
    loan.refresh_from_db()
    assert loan.outstanding == D("5000.00")
    assert Repayment.objects.filter(kind="reversal").count() == 1


def test_reverse_needs_a_reason(mpesa_config, admin_api, loan):
    paid(mpesa_config, "QREVERS002", bill_reference="LOAN-000501")

    blank = admin_api.post("/api/v1/transactions/QREVERS002/reverse", {"reason": "  "}, content_type=JSON)
    missing = admin_api.post("/api/v1/transactions/QREVERS002/reverse", {}, content_type=JSON)

    assert (blank.status_code, blank.json()) == (422, {"detail": "a reversal needs a reason"})
    assert (missing.status_code, missing.json()) == (
        422,
        {"detail": "invalid input: reason: Field required"},
    )
    assert MpesaTransaction.objects.get(trans_id="QREVERS002").status == "processed"


def test_officer_may_not_reverse_even_their_own_payment(mpesa_config, officer_api, loan):
    paid(mpesa_config, "QREVERS003", bill_reference="LOAN-000501", amount=D("700.00"))

    response = officer_api.post(
        "/api/v1/transactions/QREVERS003/reverse", {"reason": "I think so"}, content_type=JSON
    )

    assert response.status_code == 403
    assert response.json() == {"detail": "only an admin may reverse a payment"}
    assert MpesaTransaction.objects.get(trans_id="QREVERS003").status == "processed"
    loan.refresh_from_db()
    assert loan.outstanding == D("4300.00")
    assert not Allocation.objects.filter(reversed_at__isnull=False).exists()


# --- officer scoping -----------------------------------------------------------------------------------


@pytest.fixture
def portfolio_payments(mpesa_config, loan, other_loan):
    return {
        "mine": paid(mpesa_config, "QMINE00001", bill_reference="LOAN-000501"),
        "theirs": paid(mpesa_config, "QTHEIRS001", bill_reference="LOAN-000601"),
        "nobodys": paid(mpesa_config, "QNOBODY001", bill_reference="rent"),
    }


def test_officer_lists_only_their_portfolio(officer_api, admin_api, portfolio_payments):
    assert trans_ids(officer_api.get("/api/v1/transactions")) == ["QMINE00001"]
    assert trans_ids(officer_api.get("/api/v1/transactions", {"phone": "0755000222"})) == []
    assert len(trans_ids(admin_api.get("/api/v1/transactions"))) == 3


@pytest.mark.parametrize("trans_id", ["QTHEIRS001", "QNOBODY001"])
def test_officer_gets_404_for_payments_outside_their_portfolio(officer_api, portfolio_payments, trans_id):
    detail = officer_api.get(f"/api/v1/transactions/{trans_id}")
    reprocess = officer_api.post(f"/api/v1/transactions/{trans_id}/reprocess", {}, content_type=JSON)
    review = officer_api.post(f"/api/v1/transactions/{trans_id}/review", {}, content_type=JSON)
    assign = officer_api.post(
        f"/api/v1/transactions/{trans_id}/assign", {"loan_number": "LOAN-000501"}, content_type=JSON
    )
    # Reversing is for admins, but outside the portfolio the payment does not exist: 404, not 403.
    reverse = officer_api.post(f"/api/v1/transactions/{trans_id}/reverse", {"reason": "x"}, content_type=JSON)

    expected = (404, {"detail": f"no M-Pesa transaction {trans_id}"})
    for response in (detail, reprocess, review, assign, reverse):
        assert (response.status_code, response.json()) == expected
    tx = MpesaTransaction.objects.get(trans_id=trans_id)
    assert (tx.attempts, tx.reviewed_at) == (1, None)
    assert not tx.allocations.filter(loan__loan_number="LOAN-000501").exists()


def test_officer_may_not_assign_to_a_loan_outside_their_portfolio(
    officer_api, portfolio_payments, other_loan
):
    other_loan.refresh_from_db()
    assert other_loan.outstanding == D("8000.00")  # QTHEIRS001 went there

    response = officer_api.post(
        "/api/v1/transactions/QMINE00001/assign", {"loan_number": "LOAN-000601"}, content_type=JSON
    )

    assert (response.status_code, response.json()) == (404, {"detail": "no loan numbered LOAN-000601"})
    other_loan.refresh_from_db()
    assert other_loan.outstanding == D("8000.00")
    assert MpesaTransaction.objects.get(trans_id="QMINE00001").match_strategy == "bill_reference"


def test_officer_moves_a_payment_between_their_own_loans(officer_api, portfolio_payments, loan, borrower):
    second = LoanFactory(borrower=borrower, loan_number="LOAN-000502", principal_disbursed=D("2000.00"))

    response = officer_api.post(
        "/api/v1/transactions/QMINE00001/assign",
        {"loan_number": "LOAN-000502", "reason": "paid the wrong loan"},
        content_type=JSON,
    )

    assert response.status_code == 200
    assert response.json()["allocations"] == [
        {"loan_number": "LOAN-000501", "target": "loan", "amount": "1000.00", "reversed": True},
        {"loan_number": "LOAN-000502", "target": "loan", "amount": "1000.00", "reversed": False},
    ]
    loan.refresh_from_db()
    second.refresh_from_db()
    assert (loan.outstanding, second.outstanding) == (D("5000.00"), D("1000.00"))


def test_a_loan_number_is_found_in_any_case_within_the_portfolio(officer_api, portfolio_payments, borrower):
    second = LoanFactory(borrower=borrower, loan_number="LOAN-000502", principal_disbursed=D("2000.00"))

    response = officer_api.post(
        "/api/v1/transactions/QMINE00001/assign", {"loan_number": " loan-000502 "}, content_type=JSON
    )
    theirs = officer_api.post(
        "/api/v1/transactions/QMINE00001/assign", {"loan_number": "loan-000601"}, content_type=JSON
    )

    assert response.status_code == 200
    second.refresh_from_db()
    assert second.outstanding == D("1000.00")
    assert (theirs.status_code, theirs.json()) == (404, {"detail": "no loan numbered loan-000601"})


def test_assigning_to_the_loan_the_payment_is_on_is_409_and_changes_nothing(
    admin_api, portfolio_payments, loan
):
    before = (Repayment.objects.count(), OutboxMessage.objects.count(), AuditEvent.objects.count())

    response = admin_api.post(
        "/api/v1/transactions/QMINE00001/assign", {"loan_number": "LOAN-000501"}, content_type=JSON
    )

    assert (response.status_code, response.json()) == (
        409,
        {"detail": "QMINE00001 is already on LOAN-000501; nothing was changed"},
    )
    assert (Repayment.objects.count(), OutboxMessage.objects.count(), AuditEvent.objects.count()) == before
    assert not Allocation.objects.filter(reversed_at__isnull=False).exists()
    loan.refresh_from_db()
    assert loan.outstanding == D("4000.00")


def test_officer_reviews_their_own_payment(officer_api, portfolio_payments, officer):
    response = officer_api.post(
        "/api/v1/transactions/QMINE00001/review", {"note": "checked"}, content_type=JSON
    )

    assert response.status_code == 200
    assert MpesaTransaction.objects.get(trans_id="QMINE00001").reviewed_by == officer


def test_no_credentials_is_401(portfolio_payments):
    response = Client().get("/api/v1/transactions")

    assert response.status_code == 401
    assert response.json() == {"detail": "authentication required"}


def test_an_anonymous_write_is_401_not_a_csrf_failure(portfolio_payments):
    response = Client(enforce_csrf_checks=True).post(
        "/api/v1/transactions/QMINE00001/review", {"note": "x"}, content_type=JSON
    )

    assert (response.status_code, response.json()) == (401, {"detail": "authentication required"})
    assert response["WWW-Authenticate"] == "Bearer"
    assert MpesaTransaction.objects.get(trans_id="QMINE00001").reviewed_at is None


def test_a_logged_in_session_still_needs_its_csrf_token_to_write(portfolio_payments, officer):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(officer)

    response = browser.post("/api/v1/transactions/QMINE00001/review", {"note": "x"}, content_type=JSON)

    assert response.status_code == 403
    assert MpesaTransaction.objects.get(trans_id="QMINE00001").reviewed_at is None


# --- GET /api/v1/stats ------------------------------------------------------------------------------------


def test_stats_endpoint_serialises_money_and_scopes_to_the_officer(
    mpesa_config, officer_api, admin_api, loan, other_loan
):
    now = timezone.now()
    paid(mpesa_config, "QSTATS0001", bill_reference="LOAN-000501", amount=D("1200.50"), trans_time=now)
    paid(mpesa_config, "QSTATS0002", bill_reference="LOAN-000601", amount=D("300.00"), trans_time=now)
    paid(mpesa_config, "QSTATS0003", bill_reference="rent", amount=D("50.00"), trans_time=now)

    mine = officer_api.get("/api/v1/stats").json()
    everything = admin_api.get("/api/v1/stats").json()

    assert mine["periods"]["today"]["received"] == {"count": 1, "amount": "1200.50"}
    assert mine["periods"]["today"]["success_rate"] == 1.0
    assert (mine["pending"], mine["needing_attention"]) == (0, 0)
    assert everything["periods"]["today"]["received"] == {"count": 3, "amount": "1550.50"}
    assert everything["periods"]["today"]["unmatched"] == {"count": 1, "amount": "50.00"}
    assert everything["periods"]["today"]["success_rate"] == 0.6667
    assert everything["needing_attention"] == 1
    assert len(everything["daily"]) == 30
    assert everything["daily"][-1] == {
        "date": timezone.localdate(now).isoformat(),
        "count": 3,
        "amount": "1550.50",
    }
    assert {day["amount"] for day in everything["daily"][:-1]} == {"0.00"}
