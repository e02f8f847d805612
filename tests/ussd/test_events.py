"""/ussd/events/: end-of-session notifications stored once each, PINs masked; failed sessions on
the staff dashboard."""

import pytest

from tests.ussd.conftest import form_fixture
from ussd.models import InboundRequest, UssdSessionEnd
from ussd.services.events import mask_pins

pytestmark = pytest.mark.django_db


def test_a_notification_is_stored_once_with_the_pin_masked(post_form):
    body = form_fixture("ussd_session_end.txt")
    assert post_form("/ussd/events/", body).status_code == 200
    assert post_form("/ussd/events/", body).status_code == 200  # delivered again
    session = UssdSessionEnd.objects.get()
    assert (session.session_id, session.status, session.input, session.hops, session.duration_ms) == (
        "ATUid_6f1c2a9e0b7d4c3aa2f1e8d94b5c7a10",
        "Success",
        "****" + "*1*98",
        4,
        48213,
    )
    assert "4821" not in session.input
    outcomes = list(
        InboundRequest.objects.filter(kind="ussd_event").order_by("id").values_list("outcome", flat=True)
    )
    assert outcomes == ["handled", "duplicate"]


@pytest.mark.parametrize(
    ("typed", "masked"),
    [
        ("4821", "****"),
        ("1234*4821*4821", "****" + "*" + "****" + "*" + "****"),
        ("1*98*0*00", "1*98*0*00"),
        ("", ""),
    ],
)
def test_every_four_digit_input_is_masked(typed, masked):
    assert mask_pins(typed) == masked


def test_failed_sessions_are_counted_on_the_dashboard(post_form, admin_client):
    for n, status in enumerate(["Failed", "Failed", "Success", "Incomplete"]):
        post_form(
            "/ussd/events/", form_fixture("ussd_session_end.txt", sessionId=f"ATUid_{n}", status=status)
        )
    page = admin_client.get("/payments/dashboard/")
    assert page.status_code == 200
    assert ("failed USSD sessions today", 2) in page.context["channel_counts"]
    assert "failed USSD sessions today" in page.content.decode()


def test_events_need_the_secret_and_a_session_id(post_form):
    assert post_form("/ussd/events/", form_fixture("ussd_session_end.txt"), secret="nope").status_code == 403
    assert not InboundRequest.objects.exists()
    assert post_form("/ussd/events/", b"status=Failed").status_code == 400
    assert post_form("/ussd/events/", b"sessionId=x&pad=" + b"y" * 17000).status_code == 413
    assert list(InboundRequest.objects.order_by("id").values_list("outcome", flat=True)) == [
        "malformed",
        "malformed",
    ]
    assert not UssdSessionEnd.objects.exists()
