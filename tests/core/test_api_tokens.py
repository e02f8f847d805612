"""API authentication (bearer tokens, staff sessions) and the create_api_token command."""

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from core.models import ApiToken
from core.services import api_token_create
from tests.factories import LoanFactory, OfficerFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    """A client that sends a fresh bearer token of ``user``."""
    _, token = api_token_create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def session_client(user) -> Client:
    """A client logged in as ``user`` through the Django session."""
    # The factories set the password in memory only (skip_postgeneration_save), so the session's
    # password hash would not match the stored row and Django would drop the session.
    user.refresh_from_db()
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def loan(officer):
    return LoanFactory(borrower__loan_officer=officer, loan_number="LOAN-000042")


def get_loan(client: Client, token: str | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return client.get("/api/v1/loans/LOAN-000042", **headers)


def test_bearer_token_authenticates(officer, loan):
    _, token = api_token_create(user=officer, name="script")

    response = get_loan(Client(), token)

    assert response.status_code == 200
    assert response.json()["loan_number"] == "LOAN-000042"
    assert ApiToken.objects.get(user=officer).last_used_at is not None


def test_staff_session_authenticates(officer, loan):
    client = session_client(officer)

    response = get_loan(client)

    assert response.status_code == 200
    assert response.json()["loan_number"] == "LOAN-000042"


def test_no_credentials_is_401(loan):
    response = get_loan(Client())

    assert response.status_code == 401
    assert response.json() == {"detail": "authentication required"}
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("token", ["hg_not-a-real-token", "not-even-our-prefix", ""])
def test_unknown_token_is_401(officer, loan, token):
    api_token_create(user=officer)

    response = get_loan(Client(), token)

    assert response.status_code == 401
    assert response.json()["detail"].startswith("the API token is not valid")


def test_wrong_scheme_is_401(officer, loan):
    _, token = api_token_create(user=officer)

    response = Client().get("/api/v1/loans/LOAN-000042", HTTP_AUTHORIZATION=f"Token {token}")

    assert response.status_code == 401
    assert response.json() == {"detail": "authentication required"}


def test_revoked_token_is_401(officer, loan):
    row, token = api_token_create(user=officer)
    assert get_loan(Client(), token).status_code == 200
    ApiToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now())

    response = get_loan(Client(), token)

    assert response.status_code == 401
    assert response.json()["detail"].startswith("the API token is not valid")


def test_token_of_inactive_user_is_401(officer, loan):
    _, token = api_token_create(user=officer)
    officer.is_active = False
    officer.save(update_fields=["is_active"])

    response = get_loan(Client(), token)

    assert response.status_code == 401
    assert response.json()["detail"].startswith("the API token is not valid")


def test_bad_token_is_401_even_with_a_staff_session(officer, loan):
    client = session_client(officer)

    response = get_loan(client, "hg_wrong")

    assert response.status_code == 401


def test_non_staff_token_is_403(loan):
    clerk = OfficerFactory(is_staff=False)
    _, token = api_token_create(user=clerk)

    response = get_loan(Client(), token)

    assert response.status_code == 403
    assert response.json() == {"detail": "this account is not staff"}


def test_non_staff_session_is_403(loan):
    clerk = OfficerFactory(is_staff=False)
    client = session_client(clerk)

    response = get_loan(client)

    assert response.status_code == 403
    assert response.json() == {"detail": "this account is not staff"}


def test_admin_role_without_is_staff_is_allowed(loan):
    admin = OfficerFactory(is_staff=False, role="admin")
    _, token = api_token_create(user=admin)

    assert get_loan(Client(), token).status_code == 200


# --- manage.py create_api_token ---------------------------------------------------------------


def test_command_prints_a_working_token_and_stores_only_its_digest(officer, loan):
    out = StringIO()

    call_command("create_api_token", officer.username, "--name", "reporting", stdout=out)

    lines = out.getvalue().splitlines()
    token = lines[0]
    assert token.startswith("hg_")
    assert "will not be shown again" in lines[1]
    row = ApiToken.objects.get(user=officer)
    assert row.name == "reporting"
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = [str(value) for value in ApiToken.objects.values_list(flat=False).get(pk=row.pk)]
    assert token not in stored
    assert get_loan(Client(), token).status_code == 200


def test_command_unknown_user_is_an_error():
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("create_api_token", "nobody", stdout=StringIO())
    assert not ApiToken.objects.exists()


def test_command_refuses_an_inactive_user():
    user = OfficerFactory(is_active=False)

    with pytest.raises(CommandError, match="inactive"):
        call_command("create_api_token", user.username, stdout=StringIO())
    assert not ApiToken.objects.exists()


def test_command_warns_for_a_non_staff_user():
    user = OfficerFactory(is_staff=False)
    err = StringIO()

    call_command("create_api_token", user.username, stdout=StringIO(), stderr=err)

    assert "not staff" in err.getvalue()
    assert ApiToken.objects.filter(user=user).count() == 1
