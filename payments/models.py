"""M-Pesa C2B: configuration, every inbound callback as received, transactions and where their money went."""

import hashlib
import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.crypto import EncryptedTextField
from core.exceptions import NotFound
from core.models import Borrower, CreditEntry, Loan, Repayment, User, one_of
from core.money import MoneyField, format_kes
from core.phones import mask_phone
from payments.clients.daraja import FORBIDDEN_URL_WORDS


def callback_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_callback_token() -> str:
    """A random, URL-safe callback token. A random string can spell "exe" or "sql", and Daraja refuses
    every URL that contains one of its forbidden words, so such tokens are drawn again."""
    while True:
        token = secrets.token_urlsafe(24)
        if not any(word in token.lower() for word in FORBIDDEN_URL_WORDS):
            return token


class MpesaConfiguration(models.Model):
    """One paybill or till: its Daraja credentials and how its callbacks are handled."""

    # The fields stored encrypted (core.crypto): readers that do not need them defer them.
    SECRET_FIELDS = ("consumer_key", "consumer_secret", "callback_token", "security_credential")

    class Environment(models.TextChoices):
        LOCAL = "local", "Local emulator"
        SANDBOX = "sandbox", "Daraja sandbox"
        PRODUCTION = "production", "Production"

    class ApiVersion(models.TextChoices):
        V1 = "v1", "v1"
        V2 = "v2", "v2"

    class ResponseType(models.TextChoices):
        COMPLETED = "Completed", "Completed (accept when validation is unreachable)"
        CANCELLED = "Cancelled", "Cancelled (reject when validation is unreachable)"

    class ValidationPolicy(models.TextChoices):
        ACCEPT_ALL = "accept_all", "Accept every payment"
        REJECT_UNKNOWN = "reject_unknown", "Reject payments that identify no borrower"

    class IpPolicy(models.TextChoices):
        OFF = "off", "Off"
        LOG = "log", "Log and alert"
        REFUSE = "refuse", "Refuse"

    name = models.CharField(max_length=100, default="Main paybill")
    environment = models.CharField(max_length=16, choices=Environment.choices, default=Environment.LOCAL)
    is_active = models.BooleanField(default=True)
    consumer_key = EncryptedTextField(blank=True)
    consumer_secret = EncryptedTextField(blank=True)
    business_short_code = models.CharField(max_length=12, unique=True)
    base_url = models.URLField(
        help_text="Public address of this system, e.g. https://pay.haven.example (callbacks are under it)"
    )
    api_version = models.CharField(max_length=2, choices=ApiVersion.choices, default=ApiVersion.V2)
    response_type = models.CharField(
        max_length=10, choices=ResponseType.choices, default=ResponseType.COMPLETED
    )
    # Whoever knows the token can post confirmations, so it is stored encrypted like the credentials;
    # callbacks find their configuration by the token's SHA-256 digest, kept in step on save.
    callback_token = EncryptedTextField(default=new_callback_token)
    callback_token_digest = models.CharField(max_length=64, unique=True, editable=False)
    validation_policy = models.CharField(
        max_length=16, choices=ValidationPolicy.choices, default=ValidationPolicy.ACCEPT_ALL
    )
    amount_tolerance = MoneyField(
        default=Decimal("10.00"), help_text="KES either side, for matching by amount"
    )
    allowed_ips = models.TextField(
        blank=True, help_text="Safaricom's callback addresses, one per line or comma"
    )
    ip_policy = models.CharField(max_length=8, choices=IpPolicy.choices, default=IpPolicy.OFF)
    # Transaction Status queries are made by an API operator of the organisation (the org portal's
    # "initiator") with its password encrypted by Safaricom's public key (the security credential).
    initiator_name = models.CharField(max_length=100, blank=True, help_text="for Transaction Status queries")
    security_credential = EncryptedTextField(blank=True)
    last_registration_at = models.DateTimeField(null=True, blank=True)
    last_registration_result = models.JSONField(default=dict, blank=True)
    # The last Pull Transactions sync (payments.services.pull): when, and what Daraja answered. 1001
    # means "nothing" and "not provisioned" alike, so staff see it here.
    last_pull_at = models.DateTimeField(null=True, blank=True)
    last_pull_code = models.CharField(max_length=32, blank=True)
    last_pull_message = models.TextField(blank=True)
    # Since when pulls answer 1001 while callbacks arrive (one alert per such episode); cleared by a pull
    # that returns transactions.
    pull_silent_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "M-Pesa configuration"
        constraints = [
            models.CheckConstraint(condition=Q(amount_tolerance__gte=0), name="mpesa_tolerance_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.business_short_code}, {self.environment})"

    def save(self, *args, **kwargs) -> None:
        self.callback_token_digest = callback_token_digest(self.callback_token)
        if kwargs.get("update_fields") is not None and "callback_token" in kwargs["update_fields"]:
            kwargs["update_fields"] = {*kwargs["update_fields"], "callback_token_digest"}
        super().save(*args, **kwargs)

    @classmethod
    def get_active_config(cls, short_code: str | None = None) -> "MpesaConfiguration":
        """The active configuration (for ``short_code`` when given). Raises ``NotFound`` if there is none."""
        configs = cls.objects.filter(is_active=True).order_by("-updated_at")
        if short_code is not None:
            configs = configs.filter(business_short_code=short_code)
        config = configs.first()
        if config is None:
            raise NotFound(
                "no active M-Pesa configuration" + (f" for short code {short_code}" if short_code else "")
            )
        return config

    @property
    def allowed_ip_list(self) -> list[str]:
        return [ip.strip() for ip in self.allowed_ips.replace(",", "\n").splitlines() if ip.strip()]

    def callback_url(self, kind: str) -> str:
        return f"{self.base_url.rstrip('/')}/payments/c2b/{self.callback_token}/{kind}/"

    @property
    def status_result_url(self) -> str:
        return self.callback_url("status-result")

    @property
    def status_timeout_url(self) -> str:
        return self.callback_url("status-timeout")

    @property
    def validation_url(self) -> str:
        return self.callback_url("validation")

    @property
    def confirmation_url(self) -> str:
        return self.callback_url("confirmation")


class CallbackRequest(models.Model):
    """An inbound Daraja request exactly as it arrived: every validation, and every confirmation that
    did not become a new payment (malformed, refused, a duplicate ``TransID``). A confirmation that
    does become a payment is stored raw on its ``MpesaTransaction``, in the same INSERT."""

    class Kind(models.TextChoices):
        VALIDATION = "validation", "Validation"
        CONFIRMATION = "confirmation", "Confirmation"
        STATUS_RESULT = "status-result", "Transaction Status result"
        STATUS_TIMEOUT = "status-timeout", "Transaction Status timeout"

    class Outcome(models.TextChoices):
        RECEIVED = "received", "Received"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        DUPLICATE = "duplicate", "Duplicate"
        MALFORMED = "malformed", "Malformed"
        REFUSED = "refused", "Refused (source address)"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    config = models.ForeignKey(
        MpesaConfiguration, on_delete=models.PROTECT, related_name="callbacks", db_index=False
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict)
    body = models.TextField(blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RECEIVED)
    result_code = models.CharField(max_length=16, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.outcome})"


class MpesaTransactionQuerySet(models.QuerySet):
    def visible_to(self, user: User) -> "MpesaTransactionQuerySet":
        if user.is_admin:
            return self
        # A subquery, not a join through loans: a join repeats a payment once per loan of its borrower,
        # and every count or sum over the result would be multiplied.
        return self.filter(
            Q(borrower__loan_officer=user)
            | Q(borrower_id__in=Loan.objects.filter(loan_officer=user).values("borrower_id"))
        )

    def needing_attention(self) -> "MpesaTransactionQuerySet":
        return self.filter(status__in=NEEDS_STAFF, reviewed_at__isnull=True)


class TransactionStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    UNMATCHED = "unmatched", "Unmatched"
    FAILED = "failed", "Failed"
    # Kept but never posted by itself (another short code, an amount over MPESA_MAX_AMOUNT): staff
    # assign it or mark it reviewed; ``held_reason`` says why in words.
    HELD = "held", "Held for staff"
    REVERSED = "reversed", "Reversed"


# Statuses that wait for people until someone reviews them (``needing_attention``).
NEEDS_STAFF = (TransactionStatus.UNMATCHED, TransactionStatus.FAILED, TransactionStatus.HELD)


class TransactionSource(models.TextChoices):
    """How a payment reached the books: its confirmation callback, or one of the recovery roads
    taken when the callback was lost (Daraja does not retry a callback it failed to deliver)."""

    CALLBACK = "callback", "Callback"
    PULL = "pull", "Pull Transactions"
    STATEMENT = "statement", "Statement import"
    STATUS_QUERY = "status_query", "Transaction Status query"


class MsisdnKind(models.TextChoices):
    HASHED = "hashed", "Hashed (SHA-256)"
    MASKED = "masked", "Masked"
    PLAIN = "plain", "Plain"
    MISSING = "missing", "Missing"


class MpesaTransaction(models.Model):
    """One C2B payment (a confirmation), keyed by M-Pesa's ``TransID``: the durable record of the money."""

    Status = TransactionStatus

    MsisdnKind = MsisdnKind

    Source = TransactionSource

    class IdentifiedBy(models.TextChoices):
        BILL_REFERENCE = "bill_reference", "Loan number in account"
        PAYER_REFERENCE = "payer_reference", "Phone or ID in account"
        MSISDN = "msisdn", "Payer's phone"
        MANUAL = "manual", "Staff"

    class Strategy(models.TextChoices):
        BILL_REFERENCE = "bill_reference", "Loan number in account"
        SINGLE_LOAN = "single_loan", "Only active loan"
        AMOUNT = "amount", "Amount matches outstanding"
        OLDEST_DUE = "oldest_due", "Oldest due loan"
        CREDIT = "credit", "No active loan: credit"
        MANUAL = "manual", "Assigned by staff"

    trans_id = models.CharField(max_length=32)  # unique: see Meta.constraints
    transaction_type = models.CharField(max_length=32, blank=True)
    trans_time = models.DateTimeField()
    amount = MoneyField()
    business_short_code = models.CharField(max_length=12)
    bill_reference = models.CharField(max_length=64, blank=True)
    bill_reference_normalized = models.CharField(max_length=64, blank=True)
    invoice_number = models.CharField(max_length=64, blank=True)
    org_account_balance = MoneyField(null=True, blank=True)
    third_party_trans_id = models.CharField(max_length=64, blank=True)
    msisdn = models.CharField(max_length=80, blank=True, help_text="as sent: a digest, masked, or plain")
    msisdn_kind = models.CharField(max_length=8, choices=MsisdnKind.choices)
    first_name = models.CharField(max_length=100, blank=True)
    middle_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    # The confirmation request as it arrived (empty for a payment entered another way). It lives on the
    # payment row, not in CallbackRequest, so that storing a payment is one row in one statement.
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    raw_headers = models.JSONField(default=dict, blank=True)
    raw_body = models.TextField(blank=True)
    # A column with a default: the confirmation's one-statement INSERT (core.db.row_json) writes it
    # without the hot path knowing it exists.
    source = models.CharField(
        max_length=16, choices=TransactionSource.choices, default=TransactionSource.CALLBACK
    )

    # Every index here is paid on each confirmation's insert (the hot path): foreign keys that are
    # never searched by (configuration, payer, reviewer) go without one.
    config = models.ForeignKey(
        MpesaConfiguration, on_delete=models.PROTECT, related_name="transactions", db_index=False
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    identified_by = models.CharField(max_length=16, choices=IdentifiedBy.choices, blank=True)
    match_strategy = models.CharField(max_length=16, choices=Strategy.choices, blank=True)
    borrower = models.ForeignKey(
        Borrower, null=True, blank=True, on_delete=models.PROTECT, related_name="mpesa_transactions"
    )
    # When someone pays a loan that is not theirs, the borrower who paid (if we know them).
    payer_borrower = models.ForeignKey(
        Borrower,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="mpesa_payments_for_others",
        db_index=False,
    )
    notes = models.JSONField(default=list, blank=True, help_text="what the matcher tried and why, for people")
    attempts = models.PositiveIntegerField(default=0)
    # When a received payment may next be tried (later after a transient failure: backoff).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    # Why the payment was held for staff instead of posted (status ``held``); kept after staff act.
    held_reason = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Time to match and post, to the microsecond: posting takes a few milliseconds, which whole
    # milliseconds would cut by up to a third.
    processing_ms = models.FloatField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )

    objects = MpesaTransactionQuerySet.as_manager()

    class Meta:
        ordering = ["-trans_time", "-id"]
        indexes = [
            # The processing queue: received payments in the order core.queue claims them (by when
            # they are due, then id), so that a claim reads the rows it takes and no more, whatever
            # the planner believes about how many are waiting (core.queue.WorkQueue).
            models.Index(fields=["status", "next_attempt_at", "id"], name="mpesa_tx_queue"),
            models.Index(fields=["msisdn"], name="mpesa_tx_msisdn"),
            models.Index(fields=["trans_time"], name="mpesa_tx_trans_time"),
        ]
        constraints = [
            # A constraint rather than unique=True, which on PostgreSQL adds a second (LIKE) index
            # that no query uses and every confirmation would have to write.
            models.UniqueConstraint(fields=["trans_id"], name="mpesa_tx_trans_id_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="mpesa_tx_amount_positive"),
            one_of("status", TransactionStatus, "mpesa_tx_status_known"),
            one_of("msisdn_kind", MsisdnKind, "mpesa_tx_msisdn_kind_known"),
            one_of("source", TransactionSource, "mpesa_tx_source_known"),
        ]

    def __str__(self) -> str:
        return f"{self.trans_id} {self.amount}"

    @property
    def payer_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.middle_name, self.last_name) if part)

    @property
    def msisdn_display(self) -> str:
        if self.msisdn_kind == self.MsisdnKind.HASHED:
            # Not even a prefix of the digest: ten hex characters narrow a Kenyan number down enough to
            # recover it by trying them all.
            return "hashed number"
        if self.msisdn_kind == self.MsisdnKind.MASKED and "*" in self.msisdn:
            return self.msisdn  # already masked by Safaricom
        return mask_phone(self.msisdn)

    def review_requested_since_reviewed(self) -> bool:
        """Whether a borrower asked for a review of this payment (``ReviewRequest``) that staff have
        not answered yet: made after the payment was last reviewed, or while it never was. Such a
        payment may be marked reviewed again."""
        requests = self.review_requests.all()
        if self.reviewed_at is not None:
            requests = requests.filter(created_at__gt=self.reviewed_at)
        return requests.exists()

    def process_payment(self) -> "MpesaTransaction":
        """Process (or reprocess) this payment now; see ``payments.services.transaction_process``."""
        from payments.services import transaction_process

        return transaction_process(trans_id=self.trans_id)


class Allocation(models.Model):
    """Where part of a payment went: a loan (through a core Repayment) or the borrower's credit."""

    class Target(models.TextChoices):
        LOAN = "loan", "Loan"
        CREDIT = "credit", "Credit balance"

    transaction = models.ForeignKey(MpesaTransaction, on_delete=models.PROTECT, related_name="allocations")
    target = models.CharField(max_length=8, choices=Target.choices)
    loan = models.ForeignKey(
        Loan, null=True, blank=True, on_delete=models.PROTECT, related_name="allocations"
    )
    borrower = models.ForeignKey(Borrower, on_delete=models.PROTECT, related_name="allocations")
    amount = MoneyField()
    repayment = models.OneToOneField(
        Repayment, null=True, blank=True, on_delete=models.PROTECT, related_name="allocation"
    )
    credit_entry = models.OneToOneField(
        CreditEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="allocation"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when staff move the payment elsewhere: the posting was reversed, the row kept for the record.
    reversed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_amount_positive"),
            models.CheckConstraint(
                condition=(
                    Q(target="loan", loan__isnull=False, repayment__isnull=False)
                    | Q(target="credit", credit_entry__isnull=False)
                ),
                name="allocation_target_consistent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} to {self.loan or 'credit'}"


class StatusQueryState(models.TextChoices):
    SENT = "sent", "Waiting for Daraja"
    REFUSED = "refused", "Daraja refused the query"
    ANSWERED = "answered", "Answered"
    TIMED_OUT = "timed_out", "Timed out at Daraja"


class StatusQueryOutcome(models.TextChoices):
    CREATED = "created", "Payment was missing: recorded"
    CONFIRMED = "confirmed", "Payment confirmed (already recorded)"
    NOT_A_PAYMENT = "not_a_payment", "Not a completed payment to this paybill"
    NOT_FOUND = "not_found", "Daraja does not know it"


class StatusQuery(models.Model):
    """A Transaction Status query staff made for an M-Pesa receipt (a borrower says they paid), and
    Daraja's answer, which arrives later at the configuration's result URL."""

    State = StatusQueryState
    Outcome = StatusQueryOutcome

    config = models.ForeignKey(MpesaConfiguration, on_delete=models.PROTECT, related_name="status_queries")
    trans_id = models.CharField(max_length=32, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.SENT)
    conversation_id = models.CharField(max_length=64, blank=True, db_index=True)
    originator_conversation_id = models.CharField(max_length=64, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    result_code = models.CharField(max_length=32, blank=True)
    result_description = models.TextField(blank=True)
    # Daraja's answer: the result parameters by name (ReceiptNo, TransactionStatus, Amount, ...).
    answer = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = "Transaction Status query"
        verbose_name_plural = "Transaction Status queries"
        constraints = [
            one_of("state", StatusQueryState, "status_query_state_known"),
            models.CheckConstraint(
                condition=Q(outcome="") | Q(outcome__in=StatusQueryOutcome.values),
                name="status_query_outcome_known",
            ),
        ]

    def __str__(self) -> str:
        return f"status of {self.trans_id} ({self.state})"

    @property
    def transaction(self) -> "MpesaTransaction | None":
        return MpesaTransaction.objects.filter(trans_id=self.trans_id).first()


class BalanceGap(models.Model):
    """Money that reached the paybill between two payments the system has, seen in their
    ``OrgAccountBalance``: the later balance exceeds the earlier one plus the later payment."""

    config = models.ForeignKey(MpesaConfiguration, on_delete=models.PROTECT, related_name="balance_gaps")
    from_transaction = models.ForeignKey(MpesaTransaction, on_delete=models.PROTECT, related_name="+")
    to_transaction = models.ForeignKey(MpesaTransaction, on_delete=models.PROTECT, related_name="+")
    gap = MoneyField()
    found_at = models.DateTimeField(auto_now_add=True)
    # Set when a payment recovered later sits between the two: the gap is explained (or smaller,
    # and found again as its own pair).
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-found_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["from_transaction", "to_transaction"], name="balance_gap_once"),
            models.CheckConstraint(condition=Q(gap__gt=0), name="balance_gap_positive"),
        ]

    def __str__(self) -> str:
        return (
            f"{format_kes(self.gap)} unseen between {self.from_transaction_id} and {self.to_transaction_id}"
        )


class ReviewRequest(models.Model):
    """A borrower asked (by USSD or SMS) for a payment to be moved and it could not be done
    automatically: staff look at it. One row per request; staff are alerted once per payment."""

    transaction = models.ForeignKey(
        MpesaTransaction, on_delete=models.PROTECT, related_name="review_requests"
    )
    borrower = models.ForeignKey(Borrower, on_delete=models.PROTECT, related_name="review_requests")
    phone = models.CharField(max_length=16, help_text="E.164 number the request came from")
    requested_loan = models.ForeignKey(
        Loan, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    reason = models.TextField(help_text="why it was not moved automatically")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"review of {self.transaction_id} asked by {mask_phone(self.phone)}"
