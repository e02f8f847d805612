"""``manage.py seed_demo``: the demo data it promises, idempotent, refused without DEBUG."""

import io
import re
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from core.models import ApiToken, AuditEvent, Borrower, BorrowerPhone, CreditEntry, Loan, Repayment, User
from core.services import api_token_authenticate, loan_next_number

pytestmark = pytest.mark.django_db

COUNTED = (User, Borrower, BorrowerPhone, Loan, Repayment, CreditEntry, AuditEvent)


def _seed(*args: str) -> str:
    out = io.StringIO()
    with override_settings(DEBUG=True):
        call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def _token(output: str) -> str:
    return re.search(r"Bearer (hg_\S+)\"", output).group(1)


def _snapshot() -> dict:
    counts = {model.__name__: model.objects.count() for model in COUNTED}
    loans = {
        loan.loan_number: (loan.status, loan.outstanding, loan.due_date, loan.updated_at)
        for loan in Loan.objects.all()
    }
    credit = dict(Borrower.objects.values_list("national_id", "credit_balance"))
    return {"counts": counts, "loans": loans, "credit": credit}


def test_seed_demo_creates_the_promised_data():
    output = _seed()

    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("admin")
    for username in ("officer.wanjiru", "officer.otieno"):
        officer = User.objects.get(username=username)
        assert (officer.role, officer.is_staff, officer.is_superuser) == ("officer", True, False)
        assert officer.check_password("demo-pass-2025")
        assert officer.has_perm("core.change_loan") and officer.has_perm("core.view_auditevent")
        assert not officer.has_perm("core.delete_loan")
        assert Borrower.objects.filter(loan_officer=officer).count() == 6

    assert Borrower.objects.count() == 12
    assert set(Borrower.objects.values_list("preferred_language", flat=True)) == {"en", "sw"}
    assert all(
        re.fullmatch(r"\+254(7|1)\d{8}", n) for n in BorrowerPhone.objects.values_list("number", flat=True)
    )
    assert Loan.objects.count() == 11
    assert Borrower.objects.filter(loans__isnull=False).distinct().count() == 9

    paid = Loan.objects.filter(status=Loan.Status.PAID)
    assert {loan.loan_number for loan in paid} == {"LOAN-000102", "LOAN-000107"}
    for loan in paid:
        [repayment] = loan.repayments.all()
        assert repayment.principal == loan.principal_disbursed
        assert repayment.interest > 0

    charged = Loan.objects.get(loan_number="LOAN-000104")
    assert (charged.penalties, charged.fees) == (
        Decimal("0.00"),
        Decimal("250.00"),
    )  # 1,000 paid: penalties first
    assert charged.is_overdue
    assert Loan.objects.get(loan_number="LOAN-000105").is_overdue
    assert Borrower.objects.get(national_id="27812345").credit_balance == Decimal("350.00")

    assert set(AuditEvent.objects.values_list("actor_type", "actor_label").distinct()) == {
        ("system", "seed_demo")
    }
    # Loans added later continue after the demo numbers.
    assert loan_next_number() == "LOAN-000112"

    token = _token(output)
    assert api_token_authenticate(token) == admin
    assert "http://127.0.0.1:8000/admin/" in output
    assert "officer.wanjiru / demo-pass-2025" in output
    assert f'curl -H "Authorization: Bearer {token}" http://127.0.0.1:8000/api/v1/loans/LOAN-000101' in output
    assert "+2547" not in output


def test_seed_demo_twice_changes_nothing_and_prints_the_same_token():
    first_token = _token(_seed())
    before = _snapshot()

    second_token = _token(_seed())

    assert _snapshot() == before
    assert second_token == first_token
    assert api_token_authenticate(second_token) == User.objects.get(username="admin")
    assert ApiToken.objects.filter(name="demo").count() == 1


def test_seed_demo_prints_urls_for_where_it_is_served():
    output = _seed("--base-url", "http://127.0.0.1:8123/")
    assert "Admin: http://127.0.0.1:8123/admin/" in output
    assert "http://127.0.0.1:8123/api/v1/loans/LOAN-000101" in output


def test_seed_demo_keeps_an_existing_admin_password():
    _seed()
    admin = User.objects.get(username="admin")
    admin.set_password("changed-by-hand")
    admin.save()

    _seed()

    admin.refresh_from_db()
    assert admin.check_password("changed-by-hand")


@override_settings(DEBUG=False)
def test_seed_demo_refuses_without_debug():
    with pytest.raises(CommandError, match="only with DEBUG on"):
        call_command("seed_demo", stdout=io.StringIO())

    assert not User.objects.exists()
    assert not Loan.objects.exists()


def test_overdue_loans_are_relative_to_today():
    _seed()

    today = timezone.localdate()
    assert Loan.objects.get(loan_number="LOAN-000101").due_date > today
    assert Loan.objects.get(loan_number="LOAN-000105").due_date < today
