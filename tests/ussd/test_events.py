"""/ussd/events/: end-of-session notifications stored once each, PINs masked; failed sessions on
the staff dashboard."""

import pytest

from tests.ussd.conftest import form_fixture
from ussd.models import InboundRequest, UssdSessionEnd
from ussd.services.masking import PinInputs, mask_pin_field, mask_pin_inputs
from ussd.services.pins import pin_set

pytestmark = pytest.mark.django_db

SESSION = "ATUid_6f1c2a9e0b7d4c3aa2f1e8d94b5c7a10"  # the session of ussd_session_end.txt


def test_a_notification_is_stored_once_with_the_pin_the_session_asked_for_masked(
    post_form, dial, borrower, loans, paybill
):
    pin_set(borrower=borrower, pin="4821")
    for text in ("", "4821", "4821*1", "4821*1*98"):
        dial(text, session=SESSION)
    body = form_fixture("ussd_session_end.txt")  # input=4821*1*98
    assert post_form("/ussd/events/", body).status_code == 200
    assert post_form("/ussd/events/", body).status_code == 200  # delivered again
    session = UssdSessionEnd.objects.get()
    assert (session.session_id, session.status, session.input, session.hops, session.duration_ms) == (
        SESSION,
        "Success",
        "xxxx*1*98",
        4,
        48213,
    )
    raw = list(InboundRequest.objects.filter(kind="ussd_event").order_by("id"))
    assert [row.outcome for row in raw] == ["handled", "duplicate"]
    # The raw notification is kept whole but for the PIN, masked in its encoded form.
    assert [row.body for row in raw] == [body.decode().replace("input=4821%2A", "input=xxxx%2A")] * 2


def test_the_end_of_a_session_we_never_saw_is_stored_with_every_input_masked(post_form):
    post_form("/ussd/events/", form_fixture("ussd_session_end.txt"))
    assert UssdSessionEnd.objects.get().input == "xxxx*xxxx*xxxx"
    assert "input=xxxx%2Axxxx%2Axxxx&" in InboundRequest.objects.get().body


def test_what_was_typed_at_a_pin_screen_is_masked_whatever_it_looks_like(
    post_form, dial, borrower, loans, paybill
):
    # A mistyped PIN of five digits is masked; a menu choice of four digits is not.
    pin_set(borrower=borrower, pin="4821")
    for text in ("", "48213", "48213*4821", "48213*4821*1234"):
        dial(text, session=SESSION)
    post_form("/ussd/events/", form_fixture("ussd_session_end.txt", input="48213*4821*1234"))
    assert UssdSessionEnd.objects.get().input == "xxxx*xxxx*1234"


@pytest.mark.parametrize(
    ("typed", "pins", "masked"),
    [
        ("4821*1*98", PinInputs(frozenset({0}), known=3), "xxxx*1*98"),
        ("1234*4821*4821*1", PinInputs(frozenset({0, 1, 2}), known=4), "xxxx*xxxx*xxxx*1"),
        ("4821*1*6*4821*7351", PinInputs(frozenset({0, 3}), known=4), "xxxx*1*6*xxxx*xxxx"),  # 4 unknown
        ("1*98*0*00", PinInputs(frozenset(), known=4), "1*98*0*00"),
        ("1*98", PinInputs(), "xxxx*xxxx"),  # nothing known: all masked
        ("", PinInputs(), ""),
        ("1**2", PinInputs(), "xxxx**xxxx"),  # nothing typed is nothing to hide
    ],
)
def test_inputs_are_masked_by_position(typed, pins, masked):
    assert mask_pin_inputs(typed, pins) == masked


@pytest.mark.parametrize(
    ("body", "masked"),
    [
        ("sessionId=a&text=4821%2A1%2A98&x=1", "sessionId=a&text=xxxx%2A1%2A98&x=1"),
        ("sessionId=a&text=4821*1*98", "sessionId=a&text=xxxx*1*98"),
        ("text=%34%38%32%31%2a1", "text=xxxx%2a1"),  # however the digits were encoded
        ("context=4821&text=4821", "context=4821&text=xxxx"),  # only the field named
        ("text=1%2A1&text=4821%2A1", "text=xxxx%2A1&text=xxxx%2Axxxx"),  # a second one: all masked
        ("sessionId=a&text=", "sessionId=a&text="),
    ],
)
def test_the_raw_form_keeps_everything_but_the_masked_inputs(body, masked):
    assert mask_pin_field(body, field="text", pins=PinInputs(frozenset({0}), known=9)) == masked


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
