"""GET /api/v1/messages: the SMS log, in and out, newest first, numbers masked; staff only, officers
see their portfolio."""

import pytest

from core.models import OutboxMessage
from tests.core.test_api_tokens import client_for
from tests.factories import AdminFactory, BorrowerFactory, OfficerFactory
from tests.ussd.conftest import PHONE, form_fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def log(post_form, borrower, paybill):
    """Two SMS of our borrower (in, and the reply out) and one of another officer's borrower."""
    BorrowerFactory(phones=["+254733000111"], loan_officer=OfficerFactory())
    post_form("/ussd/sms/inbound/", form_fixture("sms_inbound.txt", id="in-1", text="HELP"))
    post_form(
        "/ussd/sms/inbound/",
        form_fixture("sms_inbound.txt", id="in-2", text="BAL", **{"from": "+254733000111"}),
    )
    OutboxMessage.objects.filter(recipient=PHONE).update(delivery_status="Success")


def test_an_admin_sees_every_sms_newest_first_with_numbers_masked(log):
    response = client_for(AdminFactory()).get("/api/v1/messages")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    assert [(item["direction"], item["phone"]) for item in body["items"]] == [
        ("out", "2547*****111"),
        ("in", "2547*****111"),
        ("out", "2547*****678"),
        ("in", "2547*****678"),
    ]
    ours = body["items"][2]
    assert (ours["status"], ours["text"].startswith("HAVEN GRAZURI: Send BAL")) == ("Success", True)
    assert body["items"][3]["text"] == "HELP" and body["items"][3]["status"] == "received"
    assert "254712345678" not in response.content.decode()


def test_filters_by_phone_in_any_form_and_direction(log):
    api = client_for(AdminFactory())
    items = api.get("/api/v1/messages", {"phone": "0712 345 678", "direction": "in"}).json()["items"]
    assert [(item["direction"], item["text"]) for item in items] == [("in", "HELP")]
    assert api.get("/api/v1/messages", {"direction": "out"}).json()["count"] == 2
    assert api.get("/api/v1/messages", {"limit": 1, "offset": 1}).json()["items"][0]["direction"] == "in"
    assert api.get("/api/v1/messages", {"phone": "12345"}).status_code == 422
    assert api.get("/api/v1/messages", {"direction": "sideways"}).status_code == 422


def test_an_officer_sees_only_their_portfolio(log, officer):
    body = client_for(officer).get("/api/v1/messages").json()
    assert {item["phone"] for item in body["items"]} == {"2547*****678"}
    assert body["count"] == 2


def test_it_is_for_staff_only(client, log):
    assert client.get("/api/v1/messages").status_code == 401
