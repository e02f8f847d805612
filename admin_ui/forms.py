"""Forms of the staff pages. They parse what people type; the services decide what it means."""

from django import forms

from payments.models import MpesaTransaction


class TransactionFilterForm(forms.Form):
    """The payment list's filters (GET). Values are checked again by ``transactions_filter``, whose
    errors the view shows on this form, so a filter means the same here as at the API."""

    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *MpesaTransaction.Status.choices])
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


class ReprocessForm(forms.Form):
    prefix = "reprocess"  # four forms share the payment page; their field ids must not clash

    reason = forms.CharField(required=False, max_length=500)
    # Reprocessing can post the payment to a loan: a money move, confirmed like the others.
    confirm = forms.BooleanField(
        label="I confirm: process this payment again (it may be posted to a loan)",
        error_messages={"required": "Tick “I confirm” to reprocess the payment."},
    )


class AssignForm(forms.Form):
    prefix = "assign"

    loan_number = forms.CharField(max_length=32)
    reason = forms.CharField(required=False, max_length=500)
    confirm = forms.BooleanField(
        label="I confirm: post this payment to that loan (where it went before is reversed)",
        error_messages={"required": "Tick “I confirm” to move the money."},
    )


class ReviewForm(forms.Form):
    prefix = "review"

    note = forms.CharField(required=False, max_length=500)


class ReverseForm(forms.Form):
    prefix = "reverse"

    reason = forms.CharField(max_length=500)
    confirm = forms.BooleanField(
        label="I confirm: undo every posting and credit of this payment",
        error_messages={"required": "Tick “I confirm” to reverse the payment."},
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
