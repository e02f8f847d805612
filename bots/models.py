"""The staff Telegram bot: every update as it arrived, the alerts it sent and the buttons on them.

The engine knows nothing of these tables. It queues staff alerts in the outbox with
``context={"kind", "trans_id"}``; the bot's outbox sender records here which Telegram messages carry
which payment (``PaymentAlert`` / ``AlertMessage``), and the bot's own sweeper edits those messages
when the payment is resolved elsewhere.
"""

from django.db import models
from django.db.models import Q

from core.models import User, one_of


class UpdateStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSING = "processing", "Processing"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"
    MALFORMED = "malformed", "Malformed"
    OVERSIZED = "oversized", "Oversized"


class TelegramUpdate(models.Model):
    """One POST to the webhook (or one update fetched by polling), stored before it is acted on."""

    Status = UpdateStatus

    # Telegram's de-duplication key; NULL for a body that carries none (malformed, oversized).
    update_id = models.BigIntegerField(null=True, blank=True, unique=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=UpdateStatus.choices, default=UpdateStatus.RECEIVED)
    redeliveries = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["status", "received_at"], name="telegram_update_queue")]
        constraints = [one_of("status", UpdateStatus, "telegram_update_status_known")]

    def __str__(self) -> str:
        return f"update {self.update_id} ({self.status})"


class AlertKind(models.TextChoices):
    UNMATCHED = "unmatched", "Unmatched"
    FAILED = "failed", "Failed"
    CREDIT = "credit", "Overpaid into credit"
    HELD = "held", "Held for staff"
    REVIEW_REQUEST = "review_request", "Borrower asked for review"


class PaymentAlert(models.Model):
    """One alert per payment and kind, however often the engine reports it; open until the payment is
    resolved (by a tap, or elsewhere: admin, API, another person)."""

    Kind = AlertKind

    trans_id = models.CharField(max_length=32)
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True, help_text="what resolved it, as shown on the messages")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["resolved_at"], name="payment_alert_open")]
        constraints = [
            models.UniqueConstraint(fields=["trans_id", "kind"], name="one_alert_per_payment_kind"),
            one_of("kind", AlertKind, "payment_alert_kind_known"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} alert for {self.trans_id}"


class AlertMessage(models.Model):
    """A Telegram message that carries a payment alert: edited when the alert is resolved."""

    alert = models.ForeignKey(PaymentAlert, on_delete=models.CASCADE, related_name="messages")
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    chat_id = models.BigIntegerField()
    # NULL while it is being sent (the row is the claim that stops a second copy in the same chat).
    message_id = models.BigIntegerField(null=True, blank=True)
    sent_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "chat_id"], name="one_alert_message_per_chat"),
        ]

    def __str__(self) -> str:
        return f"{self.alert} in chat {self.chat_id}"


class ActionVerb(models.TextChoices):
    REPROCESS = "reprocess", "Reprocess"
    ASSIGN = "assign", "Assign…"
    REVIEW = "review", "Mark reviewed"
    CHOOSE_LOAN = "choose_loan", "Choose a loan"
    ASK_LOAN = "ask_loan", "Type a loan number"
    CONFIRM = "confirm", "Confirm"
    CANCEL = "cancel", "Cancel"


class CallbackAction(models.Model):
    """What a button does. Its ``callback_data`` is ``token``: random and opaque, so a forged or
    replayed tap names nothing, and the meaning stays here where it expires and is used once."""

    Verb = ActionVerb

    token = models.CharField(max_length=32, unique=True)
    verb = models.CharField(max_length=16, choices=ActionVerb.choices)
    trans_id = models.CharField(max_length=32)
    alert = models.ForeignKey(PaymentAlert, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    loan_number = models.CharField(max_length=32, blank=True)
    # Set for the steps of one person's assignment (choose, type, confirm): only they may go on.
    owner = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    chat_id = models.BigIntegerField(null=True, blank=True)
    # The message that asked for a loan number: a reply to it is the answer.
    prompt_message_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    outcome = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["owner", "chat_id"], condition=Q(verb="ask_loan"), name="callback_action_open_ask"
            )
        ]
        constraints = [one_of("verb", ActionVerb, "callback_action_verb_known")]

    def __str__(self) -> str:
        return f"{self.verb} {self.trans_id}"
