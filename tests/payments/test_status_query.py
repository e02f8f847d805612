"""Transaction Status over HTTP: staff ask the emulator about a receipt, its result arrives at the
configuration's result URL (protected like the callbacks), and a lost payment is recorded once."""

import json
from decimal import Decimal as D

import httpx
import pytest

from core.exceptions import InvalidInput, InvalidState
from payments.emulator import recovery
from payments.emulator.models import EmulatedPayment
from payments.models import CallbackRequest, MpesaTransaction, StatusQuery
from payments.services.daraja import mpesa_simulate
from payments.services.status import status_query_request
from tests.factories import MpesaConfigurationFactory
from tests.payments.conftest import status_result

pytestmark = pytest.mark.urls("tests.payments.emulator_urls")


def pay(config, amount: int = 500, *, lost: bool = True) -> str:
    return mpesa_simulate(
        config=config,
        phone="0722000000",
        amount=amount,
        bill_reference="LOAN-000123",
        deliver_callbacks=not lost,
    )["TransID"]


@pytest.fixture(autouse=True)
def _no_result_outlives_its_test():
    yield
    recovery.results_cancel()


def answered(query: StatusQuery) -> StatusQuery:
    """The query once Daraja's result has arrived: the emulator's request has been answered, so the
    result was stored and its payment processed (in that request) by then."""
    recovery.results_delivered()
    query.refresh_from_db()
    return query


def test_a_lost_payment_is_recovered_by_a_status_query_and_posted_once(emulated_paybill, loan, admin_user):
    trans_id = pay(emulated_paybill, 500)

    query = status_query_request(trans_id=trans_id.lower(), user=admin_user)

    assert (query.trans_id, query.state, query.requested_by) == (trans_id, "sent", admin_user)
    assert query.conversation_id.startswith("AG_")
    query = answered(query)
    assert (query.state, query.outcome, query.result_code) == ("answered", "created", "0")
    assert query.answer["ReceiptNo"] == trans_id and query.answer["TransactionStatus"] == "Completed"
    tx = MpesaTransaction.objects.get()
    assert (tx.trans_id, tx.source, tx.status, tx.amount) == (
        trans_id,
        "status_query",
        "processed",
        D("500.00"),
    )
    assert (tx.msisdn, tx.first_name, tx.last_name) == ("254722000000", "JOHN", "DOE")
    loan.refresh_from_db()
    assert loan.outstanding == D("4500.00")
    result = CallbackRequest.objects.get(kind="status-result")
    assert (result.outcome, result.result_code) == ("accepted", "0")
    assert json.loads(result.body)["Result"]["ConversationID"] == query.conversation_id

    # M-Pesa finally delivers the lost confirmation: a duplicate.
    late = httpx.post(emulated_paybill.confirmation_url, json=EmulatedPayment.objects.get().payload)
    assert late.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    assert CallbackRequest.objects.get(kind="confirmation").outcome == "duplicate"
    loan.refresh_from_db()
    assert loan.outstanding == D("4500.00")


def test_a_payment_the_system_has_is_confirmed(emulated_paybill, loan):
    trans_id = pay(emulated_paybill, 500, lost=False)

    query = answered(status_query_request(trans_id=trans_id, user=None))

    assert query.outcome == "confirmed"
    assert MpesaTransaction.objects.get().source == "callback"
    loan.refresh_from_db()
    assert loan.outstanding == D("4500.00")


def test_a_receipt_daraja_does_not_know_is_shown_as_its_answer(emulated_paybill):
    query = answered(status_query_request(trans_id="SZZ9ZZ9ZZ9", user=None))

    assert (query.outcome, query.result_code) == ("not_found", "2001")
    assert query.result_description == "The transaction receipt number does not exist."
    assert not MpesaTransaction.objects.exists()


def test_a_waiting_query_for_the_same_receipt_is_not_sent_twice(emulated_paybill, monkeypatch):
    monkeypatch.setattr(recovery, "STATUS_RESULT_DELAY", 3.0)
    first = status_query_request(trans_id="SZZ9ZZ9ZZ9", user=None)
    second = status_query_request(trans_id="SZZ9ZZ9ZZ9", user=None)

    assert second.pk == first.pk and StatusQuery.objects.count() == 1


def test_bad_codes_and_missing_credentials_are_refused(transactional_db):
    config = MpesaConfigurationFactory(environment="sandbox")
    with pytest.raises(InvalidInput, match="not an M-Pesa receipt number"):
        status_query_request(trans_id="12345", user=None, config=config)
    with pytest.raises(InvalidState, match="no initiator and security credential"):
        status_query_request(trans_id="SAB7LQ2X9K", user=None, config=config)
    assert not StatusQuery.objects.exists()


# --- The result URL: protected and stored like the callbacks ------------------------------------


def _result(query: StatusQuery, **overrides) -> dict:
    result = {
        "ResultType": 0,
        "ResultCode": 2001,
        "ResultDesc": "The transaction receipt number does not exist.",
        "OriginatorConversationID": query.originator_conversation_id,
        "ConversationID": query.conversation_id,
        "TransactionID": "SK00000000",
        "ReferenceData": {"ReferenceItem": {"Key": "Occasion", "Value": f"haven-{query.pk}"}},
    }
    result.update(overrides)
    return {"Result": result}


@pytest.fixture
def waiting_query(transactional_db):
    config = MpesaConfigurationFactory()
    return StatusQuery.objects.create(config=config, trans_id="SAB7LQ2X9K", conversation_id="AG_1")


def test_result_with_a_wrong_token_is_404_and_stores_nothing(client, waiting_query):
    response = client.post(
        "/payments/c2b/not-the-token/status-result/", _result(waiting_query), content_type="application/json"
    )
    assert response.status_code == 404
    assert not CallbackRequest.objects.exists()
    waiting_query.refresh_from_db()
    assert waiting_query.state == "sent"


def test_a_duplicate_result_is_kept_and_changes_nothing(client, waiting_query):
    url = waiting_query.config.status_result_url.replace("https://pay.haven.example", "")
    first = client.post(url, _result(waiting_query), content_type="application/json")
    second = client.post(
        url, _result(waiting_query, ResultDesc="something else"), content_type="application/json"
    )

    assert first.json() == second.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert list(CallbackRequest.objects.order_by("id").values_list("outcome", flat=True)) == [
        "accepted",
        "duplicate",
    ]
    waiting_query.refresh_from_db()
    assert (waiting_query.outcome, waiting_query.result_description) == (
        "not_found",
        "The transaction receipt number does not exist.",
    )


@pytest.mark.parametrize(
    ("fixture", "parameters", "shown"),
    [
        # The code of money the paybill paid out (a B2C payment): completed, but not to us.
        ("status_result_b2c_payment.json", {}, "Completed, KES 300, Business Payment to Customer via API"),
        # A borrower's payment to another paybill.
        (
            "status_result_paybill_payment.json",
            {"CreditPartyName": "888880 - KPLC PREPAID"},
            "Completed, KES 500.0, Pay Bill Online",
        ),
        # A payment to us that did not complete.
        (
            "status_result_paybill_payment.json",
            {"TransactionStatus": "Failed"},
            "Failed, KES 500.0, Pay Bill Online",
        ),
    ],
    ids=["paid-out", "another-paybill", "not-completed"],
)
def test_an_answer_that_is_not_a_payment_to_us_is_shown_as_darajas_and_creates_nothing(
    client, admin_user, fixture, parameters, shown
):
    from django.urls import reverse

    from core.models import OutboxMessage
    from payments.models import BalanceGap
    from tests.core.test_api_tokens import client_for
    from tests.factories import MpesaConfigurationFactory

    config = MpesaConfigurationFactory()
    query = StatusQuery.objects.create(config=config, trans_id="MBN31H462N", conversation_id="AG_1")
    url = config.status_result_url.replace("https://pay.haven.example", "")

    response = client.post(url, status_result(fixture, query, **parameters), content_type="application/json")

    assert response.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    query.refresh_from_db()
    assert (query.state, query.outcome, query.result_code, query.error) == (
        "answered",
        "not_a_payment",
        "0",
        "",
    )
    assert query.answer["ReceiptNo"] == "MBN31H462N"
    assert not MpesaTransaction.objects.exists()
    assert not BalanceGap.objects.exists() and not OutboxMessage.objects.exists()
    assert CallbackRequest.objects.get().outcome == "accepted"

    api = client_for(admin_user).get(f"/api/v1/transactions/status-query/{query.pk}").json()
    assert (api["outcome"], api["result_code"], api["result_description"]) == (
        "not_a_payment",
        "0",
        "The service request is processed successfully.",
    )
    assert api["answer"]["CreditPartyName"] == query.answer["CreditPartyName"]
    client.force_login(admin_user)
    page = client.get(reverse("admin_ui:status-query")).content.decode()
    row = page.split('id="status-queries"')[1].split("</tr>")[1]
    assert "<strong>Not a completed payment to this paybill</strong>" in row
    assert "M-Pesa: 0 The service request is processed successfully." in row
    assert shown in row
    assert "transactions/MBN31H462N" not in row  # no payment to link to


def test_a_result_found_by_its_occasion_when_it_beats_the_acknowledgement(client, waiting_query):
    StatusQuery.objects.filter(pk=waiting_query.pk).update(conversation_id="")
    url = waiting_query.config.status_result_url.replace("https://pay.haven.example", "")

    client.post(url, _result(waiting_query, ConversationID="AG_unknown"), content_type="application/json")

    waiting_query.refresh_from_db()
    assert waiting_query.state == "answered"


def test_a_malformed_result_is_400_and_kept(client, waiting_query):
    url = waiting_query.config.status_result_url.replace("https://pay.haven.example", "")

    response = client.post(url, b"{not json", content_type="application/json")

    assert response.status_code == 400
    stored = CallbackRequest.objects.get()
    assert (stored.kind, stored.outcome, stored.body) == ("status-result", "malformed", "{not json")
    waiting_query.refresh_from_db()
    assert waiting_query.state == "sent"


def test_an_oversized_result_is_413_and_kept(client, waiting_query):
    url = waiting_query.config.status_result_url.replace("https://pay.haven.example", "")

    response = client.post(url, b"x" * (65 * 1024), content_type="application/json")

    assert response.status_code == 413
    assert CallbackRequest.objects.get().result_code == "413"


def test_the_timeout_url_marks_the_query(client, waiting_query):
    url = waiting_query.config.status_timeout_url.replace("https://pay.haven.example", "")

    response = client.post(url, _result(waiting_query), content_type="application/json")

    assert response.status_code == 200
    waiting_query.refresh_from_db()
    assert waiting_query.state == "timed_out"
    assert CallbackRequest.objects.get().kind == "status-timeout"


# --- POST /api/v1/transactions/status-query -------------------------------------------------------


@pytest.fixture
def api(admin_user):
    from tests.core.test_api_tokens import client_for

    return client_for(admin_user)


def test_api_asks_and_later_shows_the_answer(api, emulated_paybill, loan):
    trans_id = pay(emulated_paybill, 500)

    response = api.post(
        "/api/v1/transactions/status-query", {"trans_id": trans_id}, content_type="application/json"
    )

    assert response.status_code == 202
    body = response.json()
    assert (body["trans_id"], body["state"], body["outcome"], body["answer"]) == (trans_id, "sent", None, {})
    answered(StatusQuery.objects.get(pk=body["id"]))
    later = api.get(f"/api/v1/transactions/status-query/{body['id']}").json()
    assert (later["state"], later["outcome"], later["result_code"]) == ("answered", "created", "0")
    assert later["answer"]["Amount"] == "500.0"
    assert MpesaTransaction.objects.get(trans_id=trans_id).status == "processed"


def test_api_wrong_secret_is_401(emulated_paybill):
    from django.test import Client

    response = Client(HTTP_AUTHORIZATION="Bearer not-a-token").post(
        "/api/v1/transactions/status-query", {"trans_id": "SAB7LQ2X9K"}, content_type="application/json"
    )
    assert response.status_code == 401
    assert not StatusQuery.objects.exists()


def test_api_duplicate_returns_the_waiting_query(api, emulated_paybill, monkeypatch):
    monkeypatch.setattr(recovery, "STATUS_RESULT_DELAY", 3.0)
    first = api.post(
        "/api/v1/transactions/status-query", {"trans_id": "SZZ9ZZ9ZZ9"}, content_type="application/json"
    )
    second = api.post(
        "/api/v1/transactions/status-query", {"trans_id": "szz9zz9zz9"}, content_type="application/json"
    )

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert StatusQuery.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b'{"trans_id": "12"}', 422, "'12' is not an M-Pesa receipt number (e.g. SAB7LQ2X9K)"),
        (b'{"receipt": "SAB7LQ2X9K"}', 422, "invalid input: trans_id: Field required"),
        (b"{not json", 400, "Cannot parse request body"),
    ],
)
def test_api_malformed_is_refused_clearly(api, emulated_paybill, body, status, detail):
    response = api.post("/api/v1/transactions/status-query", body, content_type="application/json")

    assert response.status_code == status
    assert response.json()["detail"].startswith(detail)  # with DEBUG on, ninja adds the parser's words
    assert not StatusQuery.objects.exists()


def test_api_oversized_is_refused(api, emulated_paybill):
    body = json.dumps({"trans_id": "SAB7LQ2X9K", "padding": "x" * (3 * 1024 * 1024)})

    response = api.post("/api/v1/transactions/status-query", body, content_type="application/json")

    assert response.status_code in (400, 413)
    assert not StatusQuery.objects.exists()


# --- Admin and staff pages ----------------------------------------------------------------------------


def test_admin_asks_from_the_add_page(admin_user, emulated_paybill, loan):
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(admin_user)
    trans_id = pay(emulated_paybill, 500)

    response = client.post(reverse("admin:payments_statusquery_add"), {"trans_id": trans_id})

    assert response.status_code == 302
    query = answered(StatusQuery.objects.get())
    assert (query.outcome, query.requested_by) == ("created", admin_user)
    page = client.get(reverse("admin:payments_statusquery_changelist")).content.decode()
    assert trans_id in page and "Payment was missing: recorded" in page


def test_admin_action_confirms_selected_payments(admin_user, emulated_paybill, loan):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(admin_user)
    trans_id = pay(emulated_paybill, 500, lost=False)
    tx = MpesaTransaction.objects.get()

    client.post(
        reverse("admin:payments_mpesatransaction_changelist"),
        {"action": "ask_daraja_status", ACTION_CHECKBOX_NAME: [tx.pk]},
    )

    query = answered(StatusQuery.objects.get())
    assert (query.trans_id, query.outcome) == (trans_id, "confirmed")


def test_staff_page_asks_and_shows_the_answer(officer, emulated_paybill, loan):
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(officer)
    trans_id = pay(emulated_paybill, 500)

    response = client.post(reverse("admin_ui:status-query"), {"trans_id": trans_id})
    assert response.status_code == 302
    answered(StatusQuery.objects.get())

    page = client.get(reverse("admin_ui:status-query")).content.decode()
    assert "Payment was missing: recorded" in page
    assert reverse("admin_ui:transaction-detail", kwargs={"trans_id": trans_id}) in page
    refused = client.post(reverse("admin_ui:status-query"), {"trans_id": "hello"})
    assert "is not an M-Pesa receipt number" in refused.content.decode()


# --- The emulator's Transaction Status, as Daraja answers it -----------------------------------------


def _status_body(live_server, **overrides) -> dict:
    return {
        "Initiator": "apiop",
        "SecurityCredential": "c3VwZXJzZWNyZXQ=",
        "CommandID": "TransactionStatusQuery",
        "TransactionID": "SAB7LQ2X9K",
        "PartyA": "600984",
        "IdentifierType": "4",
        "ResultURL": f"{live_server.url}/stub-callbacks/accept/result/",
        "QueueTimeOutURL": f"{live_server.url}/stub-callbacks/accept/timeout/",
        "Remarks": "check",
        "Occasion": "",
        **overrides,
    }


def _bearer(emulator_url: str) -> dict[str, str]:
    token = httpx.get(
        f"{emulator_url}/oauth/v1/generate", params={"grant_type": "client_credentials"}, auth=("k", "s")
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_emulator_status_needs_a_token(emulator_url, live_server):
    response = httpx.post(f"{emulator_url}/mpesa/transactionstatus/v1/query", json=_status_body(live_server))
    assert response.status_code == 404
    assert response.json()["errorCode"] == "404.001.04"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("CommandID", "AccountBalance", "Invalid CommandID"),
        ("TransactionID", "12", "Invalid TransactionID"),
        ("PartyA", "x", "Invalid PartyA"),
        ("SecurityCredential", "", "Invalid Initiator or SecurityCredential"),
        ("ResultURL", "https://pay.example/mpesa/result", "Invalid ResultURL"),
    ],
)
def test_emulator_status_refuses_bad_queries(emulator_url, live_server, field, value, message):
    response = httpx.post(
        f"{emulator_url}/mpesa/transactionstatus/v1/query",
        json=_status_body(live_server, **{field: value}),
        headers=_bearer(emulator_url),
    )
    assert response.status_code == 400
    assert message in response.json()["errorMessage"]
    assert recovery._deliveries == []


def test_anonymous_status_questions_ask_nothing(client, emulated_paybill):
    from django.urls import reverse

    response = client.post(reverse("admin_ui:status-query"), {"trans_id": "SAB7LQ2X9K"})

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not StatusQuery.objects.exists()


def test_setup_mpesa_sets_the_transaction_status_credentials_and_keeps_them(transactional_db):
    from io import StringIO

    from django.core.management import call_command
    from django.db import connection

    args = ["--environment", "sandbox", "--consumer-key", "k", "--consumer-secret", "s"]
    args += ["--business-short-code", "600984", "--base-url", "https://pay.haven.example"]
    call_command(
        "setup_mpesa",
        *args,
        "--initiator",
        "apiop",
        "--security-credential",
        "Q3JlZGVudGlhbA==",
        stdout=StringIO(),
    )
    call_command("setup_mpesa", *args, stdout=StringIO())  # given nothing, both are kept

    config = MpesaConfigurationFactory._meta.model.objects.get()
    assert (config.initiator_name, config.security_credential) == ("apiop", "Q3JlZGVudGlhbA==")
    with connection.cursor() as cursor:
        cursor.execute("SELECT security_credential FROM payments_mpesaconfiguration")
        assert "Q3JlZGVudGlhbA==" not in cursor.fetchone()[0]  # encrypted at rest
