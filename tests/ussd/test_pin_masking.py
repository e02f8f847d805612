"""No PIN is kept anywhere: sessions that create a PIN, log in, get a PIN wrong and change it are
driven through the real endpoints, then every stored row of every table, the session cache and
every log record are searched for the PINs as typed inputs. The raw requests stay whole but for
the inputs typed at a PIN screen."""

import logging
import re
from urllib.parse import parse_qs

import pytest
from django.apps import apps
from django.core.cache import cache
from django.db import models

from tests.ussd.conftest import PHONE, form_fixture
from ussd import views
from ussd.models import BorrowerPin, InboundRequest, UssdSessionEnd
from ussd.services.sessions import _key
from ussd.texts import en

pytestmark = pytest.mark.django_db

TRIVIAL, FIRST, WRONG, TYPO, SECOND = "1234", "5820", "7395", "58201", "8157"
TYPED_AT_PIN_SCREENS = (TRIVIAL, FIRST, WRONG, TYPO, SECOND)

# A session per path: what is typed, step by step, and what its raw requests must show.
SESSIONS = {
    "ATUid_create": (
        [TRIVIAL, FIRST, FIRST, "1"],
        ["", "xxxx", "xxxx*xxxx", "xxxx*xxxx*xxxx", "xxxx*xxxx*xxxx*1"],
    ),
    "ATUid_login": ([FIRST, "2", "0"], ["", "xxxx", "xxxx*2", "xxxx*2*0"]),
    "ATUid_wrong": (
        [WRONG, TYPO, FIRST, "1"],
        ["", "xxxx", "xxxx*xxxx", "xxxx*xxxx*xxxx", "xxxx*xxxx*xxxx*1"],
    ),
    "ATUid_change": (
        [FIRST, "6", FIRST, SECOND, SECOND],
        ["", "xxxx", "xxxx*6", "xxxx*6*xxxx", "xxxx*6*xxxx*xxxx", "xxxx*6*xxxx*xxxx*xxxx"],
    ),
    "ATUid_login_new": ([SECOND, "1"], ["", "xxxx", "xxxx*1"]),
}


def as_typed(pin: str) -> re.Pattern[str]:
    # The PIN as a whole input: not a piece of a longer number, a hash or an id.
    return re.compile(rf"(?<![0-9A-Za-z]){pin}(?![0-9A-Za-z])")


def stored_text() -> dict[str, str]:
    """Every value of every text-like column of every row of every table (PIN hashes aside: they
    are keyed hashes, not transcripts), by table."""
    found: dict[str, str] = {}
    for model in apps.get_models():
        if model is BorrowerPin:
            continue
        columns = [
            field.attname
            for field in model._meta.concrete_fields
            if isinstance(field, models.CharField | models.TextField | models.JSONField)
        ]
        if columns:
            rows = model.objects.values_list(*columns)
            found[model._meta.label] = "\n".join(repr(row) for row in rows)
    return found


def walk(dial, session: str, inputs: list[str]) -> list[str]:
    return [dial("*".join(inputs[:n]), session=session) for n in range(len(inputs) + 1)]


def test_no_pin_is_stored_or_logged_anywhere(dial, post_form, borrower, loans, paybill, caplog, admin_client):
    caplog.set_level(logging.DEBUG)
    answers = {session: walk(dial, session, inputs) for session, (inputs, _) in SESSIONS.items()}
    # The paths did what they say.
    assert answers["ATUid_create"][1:4] == [
        f"CON {en.PIN_TRIVIAL}\n{en.PIN_CREATE}",
        f"CON {en.PIN_CONFIRM}",
        f"CON {en.PIN_SAVED}\n{en.MAIN}",
    ]
    assert answers["ATUid_wrong"][1:4] == [
        f"CON {en.PIN_WRONG.format(left=2)}",
        f"CON {en.PIN_WRONG.format(left=1)}",
        f"CON {en.MAIN}",
    ]
    assert answers["ATUid_change"][-1] == f"END {en.PIN_CHANGED}"
    assert answers["ATUid_login_new"][1] == f"CON {en.MAIN}"
    for session, (inputs, _) in SESSIONS.items():
        post_form(
            "/ussd/events/",
            form_fixture("ussd_session_end.txt", sessionId=session, input="*".join(inputs)),
        )

    # The raw requests are whole, the PINs aside.
    for session, (_, shown) in SESSIONS.items():
        rows = InboundRequest.objects.filter(kind="ussd", body__contains=f"sessionId={session}&").order_by(
            "id"
        )
        assert [row.body for row in rows] == [
            form_fixture("ussd_request.txt", sessionId=session, phoneNumber=PHONE, text=text).decode()
            for text in shown
        ]
        event = InboundRequest.objects.get(kind="ussd_event", body__contains=f"sessionId={session}&")
        assert parse_qs(event.body)["input"] == [shown[-1]]
        assert UssdSessionEnd.objects.get(session_id=session).input == shown[-1]

    # Nothing anywhere holds a PIN as it was typed.
    pages = [
        admin_client.get(f"/admin/ussd/{name}/{row.pk}/change/").content.decode()
        for name, rows in (
            ("inboundrequest", InboundRequest.objects.all()),
            ("ussdsessionend", UssdSessionEnd.objects.all()),
        )
        for row in rows
    ]
    places = {
        **stored_text(),
        "session cache": "\n".join(repr(cache.get(_key(session))) for session in SESSIONS),
        "logs": "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records),
        "admin pages": "\n".join(pages),
    }
    assert InboundRequest.objects.count() == 23 + 5 and len(pages) == 28 + 5
    leaks = [
        (place, pin)
        for place, text in places.items()
        for pin in TYPED_AT_PIN_SCREENS
        if as_typed(pin).search(text)
    ]
    assert leaks == []


def test_a_session_that_starts_with_input_is_stored_masked_then_only_its_pins(dial, borrower, loans, paybill):
    # The first requests were lost: the first one seen already carries the PIN. Before answering,
    # nothing says which inputs are PINs, so all are masked; answering tells, and the row is fixed.
    from ussd.services.pins import pin_set

    pin_set(borrower=borrower, pin=FIRST)
    assert dial(f"{FIRST}*1").startswith(f"CON {en.LOANS_HEADER}")
    row = InboundRequest.objects.get()
    assert parse_qs(row.body)["text"] == ["xxxx*1"]


def test_a_request_whose_answer_failed_keeps_every_input_masked(post_form, borrower, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(views, "ussd_answer", broken)
    post_form("/ussd/callback/", form_fixture("ussd_request.txt", text=f"{FIRST}*1"))
    row = InboundRequest.objects.get()
    assert (row.outcome, parse_qs(row.body)["text"]) == ("error", ["xxxx*xxxx"])


def test_a_malformed_request_is_stored_with_its_inputs_masked(post_form, borrower):
    response = post_form(
        "/ussd/callback/", f"sessionId=&phoneNumber=%2B254712345678&text={FIRST}%2A1".encode()
    )
    assert response.status_code == 400
    assert InboundRequest.objects.get().body == "sessionId=&phoneNumber=%2B254712345678&text=xxxx%2Axxxx"
