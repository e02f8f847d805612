"""``manage.py ussd_shell``: the menu dialled from a terminal through the real endpoint."""

import io

import pytest
from django.core.management import CommandError, call_command

from tests.ussd.conftest import pay
from ussd.models import InboundRequest
from ussd.services.pins import pin_set
from ussd.texts import en

pytestmark = pytest.mark.django_db


def run_shell(monkeypatch, typed: str, phone: str = "0712345678") -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    out = io.StringIO()
    call_command("ussd_shell", phone=phone, stdout=out)
    return out.getvalue()


def test_a_borrower_walks_to_their_loans_and_hangs_up(monkeypatch, borrower, loans, paybill):
    pin_set(borrower=borrower, pin="4829")
    pay(paybill)
    out = run_shell(monkeypatch, "4829\n1\n1\nq\n")
    assert out.startswith(f"CON {en.PIN_ENTER}\n> CON 1 My loans")
    assert "CON LOAN-000101 owes KES 4,000.00" in out
    assert out.endswith("(hung up)\n")
    assert "4829" not in out  # PINs are never echoed back
    assert InboundRequest.objects.filter(kind="ussd", outcome="handled").count() == 4


def test_the_session_ends_with_the_menu(monkeypatch, borrower, loans, paybill):
    pin_set(borrower=borrower, pin="4829")
    out = run_shell(monkeypatch, "4829\n9\n9\n9\n")
    assert out.rstrip().endswith(f"END {en.TOO_MANY_INVALID}")


def test_an_unknown_number_ends_at_once(monkeypatch, borrower):
    out = run_shell(monkeypatch, "", phone="0799888777")
    assert out.startswith("END This number is not registered")


def test_a_number_that_is_not_kenyan_is_refused(monkeypatch, db):
    with pytest.raises(CommandError):
        run_shell(monkeypatch, "", phone="12345")
