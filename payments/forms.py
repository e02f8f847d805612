"""Forms for the payments admin: the M-Pesa configuration and the pages of its actions.

Each form checks what it can without writing (phone numbers through ``normalize_phone``, amounts
through ``to_money``, loan numbers against the loans the member of staff may see); the service it
feeds checks again under lock.
"""

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from core.actors import Actor
from core.exceptions import HavenError, InvalidPhoneNumber
from core.forms import MoneyFormField, ReasonField
from core.models import Loan, User
from core.money import format_kes
from core.phones import normalize_phone
from payments.clients.daraja import MSISDN_FORMATS, callback_url_problem
from payments.codes import is_short_code
from payments.models import MpesaConfiguration, StatusQuery
from payments.services.actions import assignable_loan
from payments.services.status import status_query_request


def _secret_input() -> forms.PasswordInput:
    # render_value=False: a secret never travels back to the browser, not even after a form error.
    # new-password: stops browsers filling in the member of staff's own saved admin password.
    return forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "size": 40})


class MpesaConfigurationForm(forms.ModelForm):
    """A paybill's settings. The consumer key and secret are not model fields of this form: they are
    typed into empty password inputs, and an empty input keeps what is stored."""

    new_consumer_key = forms.CharField(
        label="New consumer key",
        required=False,
        strip=True,
        widget=_secret_input(),
        help_text="Leave empty to keep the stored key.",
    )
    new_consumer_secret = forms.CharField(
        label="New consumer secret",
        required=False,
        strip=True,
        widget=_secret_input(),
        help_text="Leave empty to keep the stored secret.",
    )

    new_security_credential = forms.CharField(
        label="New security credential",
        required=False,
        strip=True,
        widget=_secret_input(),
        help_text="For Transaction Status queries: the initiator's password encrypted with Safaricom's "
        "certificate (from the Daraja portal). Leave empty to keep the stored one.",
    )

    # Typed without a scheme it is a public address: https (and the explicit scheme silences
    # Django 5's warning about the default changing).
    base_url = forms.URLField(
        assume_scheme="https", help_text=MpesaConfiguration._meta.get_field("base_url").help_text
    )

    class Meta:
        model = MpesaConfiguration
        fields = [
            "name",
            "environment",
            "is_active",
            "business_short_code",
            "base_url",
            "api_version",
            "response_type",
            "validation_policy",
            "amount_tolerance",
            "allowed_ips",
            "ip_policy",
            "initiator_name",
        ]

    def clean_business_short_code(self) -> str:
        short_code = self.cleaned_data["business_short_code"].strip()
        if not is_short_code(short_code):
            raise ValidationError("an M-Pesa short code is 5 to 7 digits", code="invalid")
        return short_code

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        adding = self.instance.pk is None
        for name, label in (("new_consumer_key", "consumer key"), ("new_consumer_secret", "consumer secret")):
            if adding and not data.get(name):
                self.add_error(name, f"a new configuration needs its {label}")
        base_url, environment = data.get("base_url"), data.get("environment")
        if base_url and environment:
            problem = callback_url_problem(
                base_url, production=environment == MpesaConfiguration.Environment.PRODUCTION
            )
            if problem:
                self.add_error("base_url", f"Daraja would refuse the callback URLs: {problem}")
        return data


class SimulatePaymentForm(forms.Form):
    phone = forms.CharField(
        max_length=32, help_text="The payer, any form: 0712345678, 254712345678, +254 712 345 678."
    )
    amount = MoneyFormField(positive=True, help_text="Whole shillings, as M-Pesa only moves those.")
    bill_reference = forms.CharField(
        label="Account number",
        max_length=20,
        required=False,
        help_text="What the payer types as the account, e.g. a loan number or a phone number.",
    )
    msisdn_format = forms.ChoiceField(
        label="MSISDN format",
        choices=[(value, value) for value in MSISDN_FORMATS],
        initial="hashed",
        help_text="How the callbacks write the payer's number (Safaricom now sends it hashed).",
    )

    def clean_phone(self) -> str:
        try:
            return normalize_phone(self.cleaned_data["phone"])
        except InvalidPhoneNumber as exc:
            raise ValidationError(exc.detail, code="invalid_phone") from None

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        if amount != amount.to_integral_value():
            raise ValidationError("M-Pesa amounts are whole shillings", code="invalid")
        return amount


class AssignToLoanForm(forms.Form):
    """A loan number, looked up as the service will (``assignable_loan``: any case, within the
    actor's portfolio, active). The first valid submit shows the loan (borrower, outstanding) and
    asks again; the second one assigns."""

    loan_number = forms.CharField(max_length=32, help_text="e.g. LOAN-000123")
    reason = ReasonField()
    # Set by the confirmation page to the loan number it showed; a changed number is shown again.
    confirmed_loan = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, actor: Actor, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.loan: Loan | None = None

    def clean_loan_number(self) -> str:
        try:
            loan = assignable_loan(loan_number=self.cleaned_data["loan_number"], actor=self.actor)
        except HavenError as exc:
            raise ValidationError(exc.detail, code="invalid_loan") from None
        self.loan = loan
        return loan.loan_number

    def _valid_loan(self) -> Loan:
        # The confirmation steps below run on a valid form, where clean_loan_number set the loan.
        if self.loan is None:
            raise ValueError("AssignToLoanForm has no loan: the form did not validate")
        return self.loan

    def needs_confirmation(self) -> bool:
        return self.cleaned_data.get("confirmed_loan") != self._valid_loan().loan_number

    def confirming(self) -> "AssignToLoanForm":
        """The same answers, marked as shown: submitting it again assigns."""
        # Bound from the request, the data is an immutable QueryDict; copy() makes a mutable one.
        data = self.data.copy() if isinstance(self.data, QueryDict) else {**self.data}
        data["confirmed_loan"] = self._valid_loan().loan_number
        form = type(self)(data, actor=self.actor)
        form.is_valid()
        return form

    def confirmation_details(self) -> list[tuple[str, object]]:
        loan = self._valid_loan()
        return [
            ("Loan", loan.loan_number),
            ("Borrower", loan.borrower),
            ("Outstanding", format_kes(loan.outstanding)),
            ("Due date", loan.due_date),
        ]


class ReprocessForm(forms.Form):
    reason = ReasonField(
        label="Reason",
        required=False,
        help_text="Optional; kept in the audit trail of each payment with your name.",
    )


class ReviewNoteForm(forms.Form):
    note = ReasonField(
        label="Note", required=False, help_text="Optional; kept in the payment's notes and the audit trail."
    )


class ReverseForm(forms.Form):
    reason = ReasonField(help_text="Why the payment is reversed; kept in the audit trail with your name.")


# An org portal export of a year of a busy paybill is a few MB; anything far larger is not a statement.
STATEMENT_MAX_BYTES = 50 * 1024 * 1024


class StatementUploadForm(forms.Form):
    statement = forms.FileField(help_text="The M-Pesa org portal's statement export, CSV or XLSX")
    short_code = forms.ChoiceField(label="Paybill", choices=())

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["short_code"]).choices = [
            (config.business_short_code, str(config))
            for config in MpesaConfiguration.objects.filter(is_active=True).order_by("-updated_at")
        ]

    def clean_statement(self):
        upload = self.cleaned_data["statement"]
        if upload.size > STATEMENT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size // (1024 * 1024)} MB; a statement is at most "
                f"{STATEMENT_MAX_BYTES // (1024 * 1024)} MB."
            )
        return upload


class StatusQueryForm(forms.Form):
    """The M-Pesa code staff ask Daraja about (admin and staff page alike)."""

    trans_id = forms.CharField(
        label="M-Pesa code",
        max_length=32,
        help_text="The code on the borrower's M-Pesa SMS, e.g. SAB7LQ2X9K. Daraja's answer arrives in a moment.",
    )

    def ask(self, user: User) -> StatusQuery | None:
        """Ask Daraja about the code typed (``status_query_request``); returns the query, or ``None``
        with the refusal as the field's error."""
        if not self.is_valid():
            return None
        try:
            return status_query_request(trans_id=self.cleaned_data["trans_id"], user=user)
        except HavenError as exc:
            self.add_error("trans_id", exc.detail)
            return None
