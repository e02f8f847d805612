"""The borrower channels' tables: PINs, every inbound Africa's Talking request as it came (what was
typed at a PIN screen masked), incoming SMS (one row per Africa's Talking ``id``) and USSD
end-of-session notifications.

Writes happen in ``ussd.services``; the SMS the borrowers are sent are core's ``OutboxMessage`` rows.
"""

from django.db import models
from django.db.models import Q

from core.models import Borrower, OutboxMessage, one_of
from core.phones import mask_phone


class BorrowerPin(models.Model):
    """A borrower's USSD PIN as a keyed hash (HMAC-SHA256 with a key from ``USSD_PIN_KEYS`` and this
    row's salt), and the lockout state that outlives any one session (three wrong PINs lock USSD
    access for 30 minutes)."""

    borrower = models.OneToOneField(Borrower, on_delete=models.CASCADE, related_name="ussd_pin")
    salt = models.CharField(max_length=32)
    pin_hash = models.CharField(max_length=64)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "USSD PIN"

    def __str__(self) -> str:
        return f"USSD PIN of borrower {self.borrower_id}"


class InboundKind(models.TextChoices):
    USSD = "ussd", "USSD request"
    USSD_EVENT = "ussd_event", "USSD end of session"
    SMS = "sms", "Incoming SMS"
    SMS_DELIVERY = "sms_delivery", "SMS delivery report"


class InboundOutcome(models.TextChoices):
    RECEIVED = "received", "Received"
    HANDLED = "handled", "Handled"
    DUPLICATE = "duplicate", "Duplicate"
    MALFORMED = "malformed", "Malformed"
    ERROR = "error", "Error"


class InboundRequest(models.Model):
    """One request from Africa's Talking as it arrived, stored before it is acted on; only what a
    borrower typed at a PIN screen is masked (``ussd.services.masking``)."""

    Kind = InboundKind
    Outcome = InboundOutcome

    kind = models.CharField(max_length=16, choices=Kind.choices)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict)
    body = models.TextField(blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RECEIVED)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            one_of("kind", InboundKind, "ussd_inbound_kind_known"),
            one_of("outcome", InboundOutcome, "ussd_inbound_outcome_known"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.outcome})"


class IncomingSms(models.Model):
    """An SMS a borrower (or anyone) sent us, once per Africa's Talking ``id`` however often it is
    delivered, with the reply queued for it."""

    provider_id = models.CharField(max_length=100, unique=True)
    phone = models.CharField(max_length=32, help_text="E.164 when it is a Kenyan mobile, else as sent")
    to = models.CharField(max_length=32, blank=True)
    text = models.TextField(blank=True)
    keyword = models.CharField(max_length=16, blank=True)
    borrower = models.ForeignKey(
        Borrower, null=True, blank=True, on_delete=models.SET_NULL, related_name="incoming_sms"
    )
    reply = models.ForeignKey(
        OutboxMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request = models.ForeignKey(InboundRequest, on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "incoming SMS"
        verbose_name_plural = "incoming SMS"

    def __str__(self) -> str:
        return f"SMS {self.provider_id} from {mask_phone(self.phone)}"


class SessionStatus(models.TextChoices):
    SUCCESS = "Success", "Success"
    INCOMPLETE = "Incomplete", "Incomplete"
    FAILED = "Failed", "Failed"


class UssdSessionEnd(models.Model):
    """Africa's Talking's end-of-session notification, once per ``sessionId``; ``input`` is stored
    with the PINs typed in it masked."""

    Status = SessionStatus

    session_id = models.CharField(max_length=100, unique=True)
    phone = models.CharField(max_length=32)
    service_code = models.CharField(max_length=32, blank=True)
    network_code = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    hops = models.PositiveIntegerField(null=True, blank=True)
    input = models.TextField(blank=True)
    last_app_response = models.TextField(blank=True)
    error_message = models.TextField(blank=True)
    cost = models.CharField(max_length=32, blank=True)
    ended_at = models.CharField(max_length=40, blank=True, help_text="Africa's Talking's date, as sent")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "USSD session"
        indexes = [
            models.Index(fields=["received_at"], condition=Q(status="Failed"), name="ussd_session_failed")
        ]

    def __str__(self) -> str:
        return f"USSD session {self.session_id} ({self.status})"
