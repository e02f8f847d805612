"""The small helpers that give views a typed user (``staff_user``, ``api_user``) and the money form field."""

from decimal import Decimal

import pytest
from django import forms
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.utils.functional import SimpleLazyObject
from ninja.errors import AuthenticationError

from core.auth import api_user
from core.forms import MoneyFormField
from core.http import staff_user
from core.money import ZERO

pytestmark = pytest.mark.django_db


def test_staff_user_is_the_signed_in_user_behind_the_lazy_object(officer):
    request = RequestFactory().get("/")
    # What AuthenticationMiddleware puts there.
    request.user = SimpleLazyObject(lambda: officer)

    assert staff_user(request) == officer


def test_staff_user_refuses_an_anonymous_visitor():
    request = RequestFactory().get("/")
    request.user = AnonymousUser()

    with pytest.raises(PermissionDenied):
        staff_user(request)


def test_api_user_is_what_the_authenticator_returned(officer):
    request = RequestFactory().get("/")
    request.auth = officer

    assert api_user(request) == officer


@pytest.mark.parametrize("auth", ["missing", None, "a-token-string"])
def test_api_user_without_an_authenticated_user_is_a_401(auth):
    request = RequestFactory().get("/")
    if auth != "missing":
        request.auth = auth

    with pytest.raises(AuthenticationError):
        api_user(request)


class _AmountsForm(forms.Form):
    amount = MoneyFormField(positive=True)
    fee = MoneyFormField(required=False, empty_value=ZERO)


@pytest.mark.parametrize(
    ("data", "cleaned", "errors"),
    [
        ({"amount": " 1,250.50 ", "fee": ""}, {"amount": Decimal("1250.50"), "fee": ZERO}, {}),
        ({"amount": "10", "fee": "0.5"}, {"amount": Decimal("10.00"), "fee": Decimal("0.50")}, {}),
        ({"amount": "", "fee": ""}, None, {"amount": ["This field is required."]}),
        ({"amount": "0", "fee": ""}, None, {"amount": ["the amount must be more than zero"]}),
        ({"amount": "5", "fee": "-1"}, None, {"fee": ["the amount cannot be negative"]}),
    ],
)
def test_money_form_field(data, cleaned, errors):
    form = _AmountsForm(data)

    assert form.is_valid() is (cleaned is not None)
    assert form.errors == errors
    if cleaned is not None:
        assert form.cleaned_data == cleaned
