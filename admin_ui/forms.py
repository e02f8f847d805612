"""Forms of the staff pages. They parse what people type; the services decide what it means."""

from django import forms

from core.forms import ReasonField
from payments import forms as payments_forms
from payments.models import MpesaTransaction


class TransactionFilterForm(forms.Form):
    """The payment list's filters (GET). Values are checked again by ``transactions_filter``, whose
    errors the view shows on this form, so a filter means the same here as at the API."""

    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *MpesaTransaction.Status.choices])
    source = forms.ChoiceField(
        required=False, choices=[("", "Any source"), *MpesaTransaction.Source.choices], label="Came by"
    )
    trans_id = forms.CharField(required=False, max_length=32, label="Receipt")
    phone = forms.CharField(
        required=False,
        max_length=32,
        widget=forms.TextInput(attrs={"inputmode": "tel", "placeholder": "0712 345 678"}),
    )
    min_amount = forms.CharField(
        required=False,
        max_length=20,
        label="Amount from",
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
    )
    max_amount = forms.CharField(
        required=False,
        max_length=20,
        label="Amount to",
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
    )
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))


def _confirm(what: str, refusal: str) -> forms.BooleanField:
    # Each action on the payment page moves money or changes what staff see: a tick confirms it.
    return forms.BooleanField(label=f"I confirm: {what}", error_messages={"required": refusal})


# The payment page shows four action forms at once: each has a prefix so their field ids do not
# clash. The fields themselves are the admin's (payments.forms), so both ask the same questions.


class ReprocessForm(payments_forms.ReprocessForm):
    prefix = "reprocess"

    # Reprocessing can post the payment to a loan: a money move, confirmed like the others.
    confirm = _confirm(
        "process this payment again (it may be posted to a loan)",
        "Tick “I confirm” to reprocess the payment.",
    )


class AssignForm(forms.Form):
    prefix = "assign"

    loan_number = forms.CharField(max_length=32)
    reason = ReasonField(required=False)
    confirm = _confirm(
        "post this payment to that loan (where it went before is reversed)",
        "Tick “I confirm” to move the money.",
    )


class ReviewForm(payments_forms.ReviewNoteForm):
    prefix = "review"


class ReverseForm(payments_forms.ReverseForm):
    prefix = "reverse"

    confirm = _confirm(
        "undo every posting and credit of this payment", "Tick “I confirm” to reverse the payment."
    )


class SimulatedPaymentForm(forms.Form):
    phone = forms.CharField(
        max_length=32, widget=forms.TextInput(attrs={"inputmode": "tel", "placeholder": "0712 345 678"})
    )
    amount = forms.CharField(
        max_length=12, help_text="whole shillings", widget=forms.TextInput(attrs={"inputmode": "numeric"})
    )
    account = forms.CharField(
        required=False, max_length=20, label="Account number", help_text="e.g. the loan number"
    )
