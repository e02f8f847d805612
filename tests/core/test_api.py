"""The core REST API: loan detail, borrower lookup, portfolio scoping, money as strings, the docs."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from core.actors import Actor
from core.models import Repayment
from core.schemas import Money, mask_national_id
from core.services import borrower_credit_add, repayment_post, repayment_reverse
from tests.core.test_api_tokens import client_for, session_client
from tests.factories import AdminFactory, BorrowerFactory, LoanFactory, OfficerFactory

pytestmark = pytest.mark.django_db

UTC = datetime.UTC


@pytest.fixture
def api(officer) -> Client:
    return client_for(officer)


@pytest.fixture
def other_officer(db):
    return OfficerFactory()


# --- GET /api/v1/loans/{loan_number} ------------------------------------------------------------


@pytest.fixture
def loan_with_history(officer, system_actor):
    """A loan with two postings, the first of them reversed, at fixed times."""
    borrower = BorrowerFactory(
        full_name="Wanjiku Kamau", loan_officer=officer, phones=["+254712345678", "+254733000111"]
    )
    loan = LoanFactory(
        loan_number="LOAN-000101",
        borrower=borrower,
        principal_disbursed=Decimal("1000.00"),
        penalties=Decimal("100.00"),
        fees=Decimal("50.00"),
        interest=Decimal("200.00"),
        due_date=datetime.date(2025, 3, 31),
    )
    first = repayment_post(
        loan=loan,
        amount=Decimal("400"),
        actor=system_actor,
        source="mpesa",
        reference="QAB1CD2EF3",
        posted_at=datetime.datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
    ).repayment
    second = repayment_post(
        loan=loan,
        amount=Decimal("300"),
        actor=system_actor,
        source="mpesa",
        reference="QAB9ZZ8YY7",
        posted_at=datetime.datetime(2025, 3, 2, 14, 0, tzinfo=UTC),
    ).repayment
    reversal = repayment_reverse(repayment=first, actor=Actor.staff(officer), reason="paid to wrong loan")
    # The service stamps reversals with "now"; pin it so the expected JSON is exact.
    Repayment.objects.filter(pk=reversal.pk).update(posted_at=datetime.datetime(2025, 3, 3, 8, 0, tzinfo=UTC))
    return loan, first, second, reversal


def test_loan_detail_full_body(api, loan_with_history):
    loan, first, second, _reversal = loan_with_history

    response = api.get("/api/v1/loans/LOAN-000101")

    assert response.status_code == 200
    split_of_first = {"penalties": "100.00", "fees": "50.00", "interest": "200.00", "principal": "50.00"}
    assert response.json() == {
        "loan_number": "LOAN-000101",
        "status": "active",
        "due_date": "2025-03-31",
        # 1000 principal - 50 (first, reversed back) - 300 (second) + 50 = 700; charges restored.
        "outstanding": "1050.00",
        "principal": "700.00",
        "interest": "200.00",
        "fees": "50.00",
        "penalties": "100.00",
        "borrower": {"id": loan.borrower_id, "name": "Wanjiku Kamau", "phone": "2547*****678"},
        "repayments": [
            {
                "id": second.pk,
                "amount": "300.00",
                "posted_at": "2025-03-02T14:00:00Z",
                "reference": "QAB9ZZ8YY7",
                "split": {"penalties": "0.00", "fees": "0.00", "interest": "0.00", "principal": "300.00"},
                "reversed": False,
            },
            {
                "id": first.pk,
                "amount": "400.00",
                "posted_at": "2025-03-01T09:30:00Z",
                "reference": "QAB1CD2EF3",
                "split": split_of_first,
                "reversed": True,
            },
        ],
    }


def test_loan_detail_query_count_does_not_grow_with_repayments(officer, system_actor):
    api = client_for(officer)
    few = LoanFactory(borrower__loan_officer=officer)
    many = LoanFactory(borrower__loan_officer=officer)
    repayment_post(loan=few, amount=Decimal("10"), actor=system_actor, source="mpesa")
    for _ in range(12):
        result = repayment_post(loan=many, amount=Decimal("10"), actor=system_actor, source="mpesa")
    for posting in Repayment.objects.filter(loan=many)[:5]:
        repayment_reverse(repayment=posting, actor=system_actor, reason="test")
    api.get(f"/api/v1/loans/{few.loan_number}")  # the first call also stamps the token's last use

    with CaptureQueriesContext(connection) as queries_few:
        assert api.get(f"/api/v1/loans/{few.loan_number}").status_code == 200
    with CaptureQueriesContext(connection) as queries_many:
        response = api.get(f"/api/v1/loans/{many.loan_number}")

    assert len(response.json()["repayments"]) == 12  # postings only; the 5 reversals show as reversed: true
    assert result.repayment is not None
    assert len(queries_many) == len(queries_few)


def test_loan_detail_max_queries(api, loan_with_history, django_assert_max_num_queries):
    # token (+ its last-used stamp), loan with borrower, borrower phones, repayments with reversals
    with django_assert_max_num_queries(5):
        response = api.get("/api/v1/loans/LOAN-000101")
    assert response.status_code == 200


def test_officer_sees_own_loan_but_not_another_officers(api, officer, other_officer):
    mine = LoanFactory(borrower__loan_officer=officer)
    theirs = LoanFactory(borrower__loan_officer=other_officer)

    assert api.get(f"/api/v1/loans/{mine.loan_number}").status_code == 200
    response = api.get(f"/api/v1/loans/{theirs.loan_number}")

    assert response.status_code == 404
    # The same answer as for a loan that does not exist: nothing leaks.
    assert response.json() == {"detail": f"no loan numbered {theirs.loan_number}"}
    assert api.get("/api/v1/loans/LOAN-999999").json() == {"detail": "no loan numbered LOAN-999999"}


def test_officer_sees_a_loan_assigned_to_them_on_another_officers_borrower(api, officer, other_officer):
    loan = LoanFactory(borrower__loan_officer=other_officer, loan_officer=officer)

    assert api.get(f"/api/v1/loans/{loan.loan_number}").status_code == 200


@pytest.mark.parametrize(
    "make_admin",
    [AdminFactory, lambda: OfficerFactory(role="admin")],
    ids=["superuser", "admin-role"],
)
def test_admin_sees_every_loan(officer, other_officer, make_admin):
    api = client_for(make_admin())
    loans = [
        LoanFactory(borrower__loan_officer=officer),
        LoanFactory(borrower__loan_officer=other_officer),
        LoanFactory(borrower__loan_officer=None),
    ]

    for loan in loans:
        response = api.get(f"/api/v1/loans/{loan.loan_number}")
        assert response.status_code == 200
        assert response.json()["loan_number"] == loan.loan_number


# --- GET /api/v1/borrowers?phone= ---------------------------------------------------------------


@pytest.fixture
def borrower(officer):
    borrower = BorrowerFactory(
        full_name="Otieno Ochieng",
        national_id="12345678",
        preferred_language="sw",
        loan_officer=officer,
        phones=["+254712345678", "+254110222333"],
    )
    borrower_credit_add(
        borrower=borrower, amount=Decimal("75.50"), actor=Actor.system("tests"), reference="QXX1"
    )
    LoanFactory(
        loan_number="LOAN-000202",
        borrower=borrower,
        principal_disbursed=Decimal("5000"),
        interest=Decimal("500"),
        due_date=datetime.date(2025, 6, 30),
    )
    LoanFactory(
        loan_number="LOAN-000201",
        borrower=borrower,
        principal_disbursed=Decimal("10000"),
        fees=Decimal("250.5"),
        penalties=Decimal("12"),
        due_date=datetime.date(2025, 5, 31),
    )
    return borrower


@pytest.mark.parametrize("phone", ["0712345678", "+254 712 345 678", "254712345678"])
def test_borrower_lookup_by_any_phone_form(api, borrower, officer, phone):
    response = api.get("/api/v1/borrowers", {"phone": phone})

    assert response.status_code == 200
    assert response.json() == {
        "id": borrower.pk,
        "name": "Otieno Ochieng",
        "phone": "2547*****678",
        "phones": ["2547*****678", "2541*****333"],
        "national_id": "*****678",
        "preferred_language": "sw",
        "loan_officer": officer.username,
        "credit_balance": "75.50",
        "loans": [
            {
                "loan_number": "LOAN-000201",
                "status": "active",
                "due_date": "2025-05-31",
                "outstanding": "10262.50",
                "principal": "10000.00",
                "interest": "0.00",
                "fees": "250.50",
                "penalties": "12.00",
            },
            {
                "loan_number": "LOAN-000202",
                "status": "active",
                "due_date": "2025-06-30",
                "outstanding": "5500.00",
                "principal": "5000.00",
                "interest": "500.00",
                "fees": "0.00",
                "penalties": "0.00",
            },
        ],
    }


def test_borrower_lookup_by_secondary_phone(api, borrower):
    response = api.get("/api/v1/borrowers", {"phone": "0110222333"})

    assert response.status_code == 200
    assert response.json()["id"] == borrower.pk


def test_borrower_without_officer_or_national_id(admin_user):
    BorrowerFactory(phones=["+254722000001"], national_id=None, loan_officer=None)

    response = client_for(admin_user).get("/api/v1/borrowers", {"phone": "0722000001"})

    assert response.status_code == 200
    body = response.json()
    assert (body["national_id"], body["loan_officer"], body["credit_balance"], body["loans"]) == (
        None,
        None,
        "0.00",
        [],
    )


@pytest.mark.parametrize(
    ("phone", "detail"),
    [
        ("0201234567", "'2542*****567' is not a Kenyan mobile number"),
        ("12345", "'*****' is not a Kenyan mobile number"),
        ("", "phone number is empty"),
    ],
)
def test_borrower_lookup_bad_phone_is_422(api, borrower, phone, detail):
    response = api.get("/api/v1/borrowers", {"phone": phone})

    assert response.status_code == 422
    assert response.json() == {"detail": detail}


def test_borrower_lookup_without_phone_is_422(api):
    response = api.get("/api/v1/borrowers")

    assert response.status_code == 422
    assert response.json() == {"detail": "invalid input: phone: Field required"}


def test_borrower_lookup_unknown_phone_is_404(api, borrower):
    response = api.get("/api/v1/borrowers", {"phone": "0799999999"})

    assert response.status_code == 404
    assert response.json() == {"detail": "no borrower has this phone number"}


def test_borrower_of_another_officer_is_404(borrower, other_officer):
    response = client_for(other_officer).get("/api/v1/borrowers", {"phone": "0712345678"})

    assert response.status_code == 404
    assert response.json() == {"detail": "no borrower has this phone number"}


def test_admin_finds_any_borrower(borrower, admin_user):
    response = client_for(admin_user).get("/api/v1/borrowers", {"phone": "+254712345678"})

    assert response.status_code == 200
    assert [loan["loan_number"] for loan in response.json()["loans"]] == ["LOAN-000201", "LOAN-000202"]


def test_borrower_lookup_query_count(api, borrower, django_assert_max_num_queries):
    api.get("/api/v1/borrowers", {"phone": "0712345678"})  # stamps the token's last use
    # token, borrower with officer, phones, loans
    with django_assert_max_num_queries(4):
        assert api.get("/api/v1/borrowers", {"phone": "0712345678"}).status_code == 200


# --- money and masking --------------------------------------------------------------------------


def test_money_serialises_as_a_two_decimal_string():
    money = TypeAdapter(Money)

    assert money.dump_python(Decimal("1250")) == "1250.00"
    assert money.dump_json(Decimal("0.5")) == b'"0.50"'
    assert money.validate_python("1,250.5") == Decimal("1250.50")


@pytest.mark.parametrize("value", [12.5, "1.005", "abc"])
def test_money_rejects_floats_and_fractions_of_cents(value):
    with pytest.raises(PydanticValidationError):
        TypeAdapter(Money).validate_python(value)


@pytest.mark.parametrize(
    ("national_id", "masked"),
    [("12345678", "*****678"), ("A1234", "**234"), ("123", "***"), (None, None), ("", None)],
)
def test_mask_national_id(national_id, masked):
    assert mask_national_id(national_id) == masked


def test_openapi_schema_shows_money_as_string(admin_user):
    client = session_client(admin_user)

    schema = client.get("/api/v1/openapi.json").json()

    schemas = schema["components"]["schemas"]
    for name, field in [
        ("LoanDetailOut", "outstanding"),
        ("LoanSummaryOut", "principal"),
        ("SplitOut", "interest"),
        ("RepaymentOut", "amount"),
        ("BorrowerOut", "credit_balance"),
    ]:
        assert schemas[name]["properties"][field]["type"] == "string", (name, field)


# --- docs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/docs", "/api/v1/openapi.json"])
def test_docs_redirect_anonymous_to_admin_login(path):
    response = Client().get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"


@pytest.mark.parametrize("path", ["/api/v1/docs", "/api/v1/openapi.json"])
def test_docs_refuse_a_logged_in_non_staff_user(path):
    client = session_client(OfficerFactory(is_staff=False))

    assert client.get(path).status_code == 302


@pytest.mark.parametrize("path", ["/api/v1/docs", "/api/v1/openapi.json"])
def test_docs_open_for_staff(officer, path):
    client = session_client(officer)

    response = client.get(path)

    assert response.status_code == 200
    if path.endswith(".json"):
        assert "/api/v1/loans/{loan_number}" in response.json()["paths"]


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/loans/", "/api/v2/loans/LOAN-000001"])
def test_unknown_api_paths_are_json_404(client, path):
    response = client.get(path)
    assert (response.status_code, response.json()) == (404, {"detail": "not found"})
