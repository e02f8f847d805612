"""Forms for the staff admin: the add forms that go through services and the admin actions' pages.

Each form checks what it can without writing (amounts through ``to_money``, phone numbers through
``normalize_phone``, numbers already taken), so a mistake comes back on the form; the service it
feeds checks again under lock.
"""

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.exceptions import InvalidAmount, InvalidPhoneNumber
from core.models import Borrower, BorrowerPhone, Loan, User
from core.money import ZERO, to_money
from core.phones import mask_phone, normalize_phone

_PHONE_SEPARATORS = re.compile(r"[,;\n]+")


class MoneyFormField(forms.Field):
    """Shillings typed by a person (``1,250.50``), parsed with ``to_money`` into a Decimal; an empty
    answer is ``empty_value``."""

    def __init__(self, *, positive: bool = False, empty_value: Decimal | None = None, **kwargs: Any) -> None:
        self.positive = positive
        self.empty_value = empty_value
        # Text, not a number input: people type thousands separators ("1,250.50").
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "size": 14}))
        super().__init__(**kwargs)

    def to_python(self, value: object) -> Decimal | None:
        text = "" if value in self.empty_values else str(value).strip()
        if not text:
            return self.empty_value
        try:
            amount = to_money(text)
        except InvalidAmount as exc:
            raise ValidationError(exc.detail, code="invalid") from None
        if amount < 0 or (self.positive and amount == 0):
            raise ValidationError(
                "the amount must be more than zero" if self.positive else "the amount cannot be negative",
                code="min_value",
            )
        return amount


class ReasonField(forms.CharField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 1000)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "cols": 60}))
        kwargs.setdefault("help_text", "Kept in the audit trail with your name.")
        super().__init__(**kwargs)


def _normalize_or_error(raw: str) -> str:
    try:
        return normalize_phone(raw)
    except InvalidPhoneNumber as exc:
        raise ValidationError(exc.detail, code="invalid_phone") from None


# --- Add forms (the admin saves them through services) -------------------------------------------


class BorrowerAddForm(forms.ModelForm):
    """A new borrower; ``BorrowerAdmin`` creates it with ``borrower_create``."""

    phones = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "cols": 40}),
        help_text="One or more numbers, separated by commas or new lines; the first is primary. "
        "Any form: 0712345678, 254712345678, +254 712 345 678.",
    )

    class Meta:
        model = Borrower
        fields = ["full_name", "national_id", "preferred_language", "loan_officer"]

    def clean_phones(self) -> list[str]:
        raws = [raw.strip() for raw in _PHONE_SEPARATORS.split(self.cleaned_data["phones"]) if raw.strip()]
        if not raws:
            raise ValidationError("a borrower needs at least one phone number")
        numbers, errors = [], []
        for raw in raws:
            try:
                numbers.append(_normalize_or_error(raw))
            except ValidationError as exc:
                errors.extend(exc.messages)
        if errors:
            raise ValidationError(errors)
        numbers = list(dict.fromkeys(numbers))
        taken = BorrowerPhone.objects.filter(number__in=numbers).values_list("number", flat=True)
        if taken:
            raise ValidationError(
                "already belongs to another borrower: " + ", ".join(mask_phone(n) for n in taken)
            )
        return numbers


class LoanAddForm(forms.ModelForm):
    """A new loan; ``LoanAdmin`` creates it with ``loan_create``, which assigns the loan number."""

    principal = MoneyFormField(positive=True, help_text="The amount disbursed.")
    interest = MoneyFormField(required=False, empty_value=ZERO, initial="0.00")
    fees = MoneyFormField(required=False, empty_value=ZERO, initial="0.00")

    class Meta:
        model = Loan
        fields = ["borrower", "principal", "interest", "fees", "disbursed_on", "due_date", "loan_officer"]
        help_texts = {
            "disbursed_on": "Leave empty for today.",
            "loan_officer": "Leave empty for the borrower's officer.",
        }

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        due_date = cleaned.get("due_date")
        disbursed_on = cleaned.get("disbursed_on") or timezone.localdate()
        if due_date and due_date < disbursed_on:
            self.add_error("due_date", "the due date cannot be before the disbursement date")
        return cleaned


class BorrowerPhoneForm(forms.ModelForm):
    """A phone number added on the borrower page; saved with ``borrower_phone_add``."""

    class Meta:
        model = BorrowerPhone
        fields = ["number", "is_primary"]
        labels = {"is_primary": "Primary"}
        help_texts = {"number": "Any form: 0712345678, +254712345678."}

    def clean_number(self) -> str:
        return _normalize_or_error(self.cleaned_data["number"])


class StaffPhoneMixin:
    """Staff phone numbers are kept in E.164, like borrowers'."""

    cleaned_data: dict[str, Any]  # the form's, which this mixin comes before

    def clean_phone(self) -> str:
        raw = (self.cleaned_data.get("phone") or "").strip()
        return _normalize_or_error(raw) if raw else ""


class StaffCreationForm(StaffPhoneMixin, AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User


class StaffChangeForm(StaffPhoneMixin, UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User


# --- Admin action pages ----------------------------------------------------------------------------


class ManualRepaymentForm(forms.Form):
    amount = MoneyFormField(positive=True, help_text="Shillings received.")
    reference = forms.CharField(
        max_length=64, required=False, help_text="e.g. the M-Pesa code or the receipt number."
    )
    reason = ReasonField()


class ApplyCreditForm(forms.Form):
    amount = MoneyFormField(
        positive=True, help_text="At most the loan's outstanding is taken, and no more than the credit."
    )
    reason = ReasonField()


class ReasonForm(forms.Form):
    reason = ReasonField()
