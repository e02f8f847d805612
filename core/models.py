"""The lender's domain: staff, borrowers and their phones, loans, repayments, credit, audit, API tokens.

Writes happen in ``core.services``; models hold tables, statuses, constraints and lookups only.
"""

from decimal import Decimal

from django.contrib.auth.models import AbstractUser
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.money import ZERO, MoneyField
from core.phones import mask_phone, msisdn_hash


def one_of(field: str, choices: type[models.TextChoices], name: str) -> models.CheckConstraint:
    """A database check that ``field`` holds one of ``choices``: a status written by raw SQL or a
    future bug cannot be something the code does not know."""
    return models.CheckConstraint(condition=Q(**{f"{field}__in": choices.values}), name=name)


class User(AbstractUser):
    """A member of staff. Loan officers see their portfolio; admins (and superusers) see everything."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        OFFICER = "officer", "Loan officer"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.OFFICER)
    phone = models.CharField(max_length=16, blank=True, help_text="E.164; for notes to the officer")
    # The staff bot's link to this person (core.services.staff): who they are on Telegram, the private
    # chat alerts go to, and whether that chat still takes messages (false once they block the bot;
    # alerts then go by SMS until they link again). Only a digest of a pending link code is kept.
    telegram_user_id = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    telegram_chat_id = models.BigIntegerField(null=True, blank=True, editable=False)
    telegram_unreachable = models.BooleanField(default=False, editable=False)
    telegram_linked_at = models.DateTimeField(null=True, blank=True, editable=False)
    telegram_link_code_digest = models.CharField(
        max_length=64, null=True, blank=True, unique=True, editable=False
    )
    telegram_link_code_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    @property
    def is_admin(self) -> bool:
        return self.is_superuser or self.role == self.Role.ADMIN

    @property
    def telegram_reachable(self) -> bool:
        return self.telegram_chat_id is not None and not self.telegram_unreachable


class Language(models.TextChoices):
    ENGLISH = "en", "English"
    KISWAHILI = "sw", "Kiswahili"


class BorrowerQuerySet(models.QuerySet):
    def visible_to(self, user: User) -> "BorrowerQuerySet":
        if user.is_admin:
            return self
        # An officer's portfolio: borrowers assigned to them, and borrowers of loans assigned to them.
        # A subquery, not a join: a join repeats a borrower once per loan, and sums over it double.
        return self.filter(
            Q(loan_officer=user) | Q(pk__in=Loan.objects.filter(loan_officer=user).values("borrower_id"))
        )


class Borrower(models.Model):
    full_name = models.CharField(max_length=200)
    # NULL (not "") when absent, so the unique index only covers IDs that exist.
    national_id = models.CharField(max_length=20, null=True, blank=True, unique=True)
    preferred_language = models.CharField(max_length=2, choices=Language.choices, default=Language.ENGLISH)
    loan_officer = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="portfolio"
    )
    # Money that belongs to the borrower but to no loan; changed only with a CreditEntry, under lock.
    credit_balance = MoneyField(default=ZERO)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BorrowerQuerySet.as_manager()

    # Not a column: set by selectors.borrower_get_for_user_by_phone (a prefetch's to_attr) to the
    # borrower's loans that its caller may see.
    visible_loans: list["Loan"]

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(credit_balance__gte=0), name="borrower_credit_not_negative"),
            one_of("preferred_language", Language, "borrower_language_known"),
        ]

    def __str__(self) -> str:
        return self.full_name

    def save(self, *args, **kwargs) -> None:
        # The masked-number keys hold the name (derived data, like a phone's digest): a saved name
        # takes its phones' keys with it, in the same transaction. A new borrower has no phones yet.
        update_fields = kwargs.get("update_fields")
        if self._state.adding or (update_fields is not None and "full_name" not in update_fields):
            super().save(*args, **kwargs)
            return
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
            _masked_keys_rebuild(self.pk)

    @property
    def primary_phone(self) -> "BorrowerPhone | None":
        phones = list(self.phones.all())  # uses prefetch_related("phones") when present
        return next((p for p in phones if p.is_primary), phones[0] if phones else None)


class BorrowerPhone(models.Model):
    """A borrower's phone number in E.164, with the SHA-256 digest M-Pesa sends in place of it."""

    borrower = models.ForeignKey(Borrower, on_delete=models.CASCADE, related_name="phones")
    number = models.CharField(max_length=16, unique=True)
    msisdn_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_primary = models.BooleanField(default=False)
    # SMS delivery reports: final failures in a row (a success resets it), and since when the number
    # has been failing (set at SMS_FAILING_AFTER failures in a row) so staff can ask for a new one.
    delivery_failures = models.PositiveSmallIntegerField(default=0)
    sms_failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_primary", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["borrower"], condition=Q(is_primary=True), name="one_primary_phone_per_borrower"
            ),
        ]

    def __str__(self) -> str:
        return mask_phone(self.number)

    def save(self, *args, **kwargs) -> None:
        # The digest is derived data: recompute it on every save so it can never drift from the number.
        self.msisdn_hash = msisdn_hash(self.number)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "number" in update_fields:
            kwargs["update_fields"] = {*update_fields, "msisdn_hash"}
        # So are its masked-number keys (MaskedPhoneKey), rebuilt in the same transaction when the
        # number or its borrower may have changed; deleting the phone deletes them (CASCADE).
        if (
            not self._state.adding
            and update_fields is not None
            and not {"number", "borrower", "borrower_id"} & {*update_fields}
        ):
            super().save(*args, **kwargs)
            return
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
            _masked_keys_rebuild(self.borrower_id)


def _masked_keys_rebuild(borrower_id: int) -> None:
    # Imported here: the services import these models.
    from core.services.masked_keys import masked_keys_rebuild

    masked_keys_rebuild(borrower_ids=[borrower_id])


class MaskedPhoneKey(models.Model):
    """What a masked M-Pesa number (``2547 ***** 126``) and the payer's names reveal of one phone:
    its last three digits with a token or a pair of tokens of its borrower's name (``126:mutai``,
    ``126:mutai+nicholas``; ``core.names`` has the forms). The masked lookup
    (``payments.selectors.DatabaseDirectory``) finds the few phones that fit by this index instead
    of reading every number with the same last digits.

    Derived from ``BorrowerPhone.number`` and ``Borrower.full_name`` by
    ``core.services.masked_keys.masked_keys_rebuild``, which every write of either calls (the
    models' ``save``, the loan import's bulk writes); never edited by hand."""

    # Three digits, a colon and at most the 200 characters of a name (a pair's "+" takes the place of
    # the separator between its two tokens).
    key = models.CharField(max_length=204)
    # No foreign-key constraints in the database: a phone has five keys or so, and checking each
    # key's two references was two thirds of what writing keys cost a first import. Keys are
    # derived and only ever written from the rows they point to; the lookup joins both, so a key
    # left behind by a raw DELETE would find nobody. Deleting a phone through Django deletes its
    # keys (CASCADE).
    phone = models.ForeignKey(
        BorrowerPhone, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    # The phone's borrower, so that the lookup reads borrowers in order from the key's index. Keys
    # go with their phone (which goes with its borrower), so nothing is done here; and no index of
    # its own: PostgreSQL would walk it, in borrower order, through every key of a whole portfolio.
    borrower = models.ForeignKey(
        Borrower, on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False
    )

    class Meta:
        # By key, in borrower order: "the first two borrowers whose phones have this key" reads two.
        indexes = [models.Index(fields=["key", "borrower"], name="masked_key_borrower")]
        constraints = [
            # Also the index of "does this phone have that key too" (and of the phone's cascade).
            models.UniqueConstraint(fields=["phone", "key"], name="masked_key_once_per_phone"),
        ]

    def __str__(self) -> str:
        return self.key


class Counter(models.Model):
    """A named counter, incremented under a row lock (loan numbers)."""

    name = models.CharField(max_length=32, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class LoanQuerySet(models.QuerySet):
    def visible_to(self, user: User) -> "LoanQuerySet":
        if user.is_admin:
            return self
        return self.filter(Q(borrower__loan_officer=user) | Q(loan_officer=user))

    def active(self) -> "LoanQuerySet":
        return self.filter(status=Loan.Status.ACTIVE)

    def with_outstanding(self) -> "LoanQuerySet":
        return self.annotate(outstanding_total=F("penalties") + F("fees") + F("interest") + F("principal"))


class LoanStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAID = "paid", "Paid"
    WRITTEN_OFF = "written_off", "Written off"


class Loan(models.Model):
    Status = LoanStatus

    loan_number = models.CharField(max_length=32, unique=True)
    borrower = models.ForeignKey(Borrower, on_delete=models.PROTECT, related_name="loans")
    principal_disbursed = MoneyField()
    # The outstanding amount, split the way repayments are applied (penalties first).
    penalties = MoneyField(default=ZERO)
    fees = MoneyField(default=ZERO)
    interest = MoneyField(default=ZERO)
    principal = MoneyField(default=ZERO)
    disbursed_on = models.DateField(null=True, blank=True)
    due_date = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    loan_officer = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="loans"
    )
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LoanQuerySet.as_manager()

    class Meta:
        ordering = ["due_date", "id"]
        indexes = [models.Index(fields=["borrower", "status", "due_date"], name="loan_borrower_status_due")]
        constraints = [
            models.CheckConstraint(condition=Q(penalties__gte=0), name="loan_penalties_not_negative"),
            models.CheckConstraint(condition=Q(fees__gte=0), name="loan_fees_not_negative"),
            models.CheckConstraint(condition=Q(interest__gte=0), name="loan_interest_not_negative"),
            models.CheckConstraint(condition=Q(principal__gte=0), name="loan_principal_not_negative"),
            models.CheckConstraint(
                condition=Q(principal_disbursed__gte=0), name="loan_principal_disbursed_not_negative"
            ),
            models.CheckConstraint(
                condition=~Q(status="paid") | Q(penalties=0, fees=0, interest=0, principal=0),
                name="loan_paid_means_nothing_outstanding",
            ),
            one_of("status", LoanStatus, "loan_status_known"),
        ]

    def __str__(self) -> str:
        return self.loan_number

    @property
    def outstanding(self) -> Decimal:
        return self.penalties + self.fees + self.interest + self.principal

    @property
    def is_overdue(self) -> bool:
        return self.status == self.Status.ACTIVE and self.due_date < timezone.localdate()


class RepaymentKind(models.TextChoices):
    POSTING = "posting", "Posting"
    REVERSAL = "reversal", "Reversal"


class Repayment(models.Model):
    """Money applied to a loan (a posting), or the exact undoing of one (a reversal). Both are kept."""

    Kind = RepaymentKind

    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="repayments")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.POSTING)
    amount = MoneyField()
    penalties = MoneyField(default=ZERO)
    fees = MoneyField(default=ZERO)
    interest = MoneyField(default=ZERO)
    principal = MoneyField(default=ZERO)
    reference = models.CharField(max_length=64, blank=True, db_index=True, help_text="e.g. the M-Pesa code")
    source = models.CharField(max_length=32, help_text="where the money came from: mpesa, credit, manual")
    reason = models.TextField(blank=True)
    posted_at = models.DateTimeField(default=timezone.now)
    reversal_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversal"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-posted_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="repayment_amount_positive"),
            models.CheckConstraint(
                condition=Q(penalties__gte=0, fees__gte=0, interest__gte=0, principal__gte=0),
                name="repayment_split_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(amount=F("penalties") + F("fees") + F("interest") + F("principal")),
                name="repayment_split_adds_up",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="posting", reversal_of__isnull=True)
                    | Q(kind="reversal", reversal_of__isnull=False)
                ),
                name="repayment_reversal_points_to_posting",
            ),
            one_of("kind", RepaymentKind, "repayment_kind_known"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} on {self.loan_id}"

    @property
    def split(self) -> dict[str, Decimal]:
        return {
            "penalties": self.penalties,
            "fees": self.fees,
            "interest": self.interest,
            "principal": self.principal,
        }

    @property
    def is_reversed(self) -> bool:
        return self.kind == self.Kind.POSTING and hasattr(self, "reversal")


class CreditEntry(models.Model):
    """One movement of a borrower's credit balance (positive in, negative out)."""

    borrower = models.ForeignKey(Borrower, on_delete=models.PROTECT, related_name="credit_entries")
    amount = MoneyField()
    balance_after = MoneyField()
    reference = models.CharField(max_length=64, blank=True, db_index=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit entries"
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="credit_entry_not_zero"),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="credit_entry_balance_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount:+} for borrower {self.borrower_id}"


class AuditEvent(models.Model):
    """Who changed money or an allocation, what, when and why. Written by services, never edited."""

    class ActorType(models.TextChoices):
        STAFF = "staff", "Staff"
        BORROWER = "borrower", "Borrower"
        SYSTEM = "system", "System"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Username for staff, E.164 phone for a borrower, component name for the system.
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    borrower = models.ForeignKey(
        Borrower, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    loan = models.ForeignKey(
        Loan, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    amount = MoneyField(null=True, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_type}:{self.actor_label}"


class ApiToken(models.Model):
    """A bearer token for the REST API. Only its SHA-256 digest is stored; the token is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, help_text="first characters, to recognise a token")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}... ({self.user})"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class OutboxChannel(models.TextChoices):
    SMS = "sms", "SMS"
    TELEGRAM = "telegram", "Telegram"


class OutboxMessage(models.Model):
    """A message to a person (SMS receipt, staff note, alert), recorded in the same transaction as the
    event it reports and delivered afterwards by the channel that owns it, with retries."""

    Channel = OutboxChannel

    Status = OutboxStatus

    channel = models.CharField(max_length=16, choices=Channel.choices)
    recipient = models.CharField(max_length=64, help_text="E.164 phone for SMS, chat id for Telegram")
    body = models.TextField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING
    )  # outbox_due leads with it
    attempts = models.PositiveSmallIntegerField(default=0)
    provider_id = models.CharField(max_length=100, blank=True)
    last_error = models.TextField(blank=True)
    # What the provider's delivery report last said (Africa's Talking: Sent, Submitted, Buffered,
    # Success, Failed, Rejected), and why it failed; empty until a report arrives.
    delivery_status = models.CharField(max_length=16, blank=True)
    delivery_error = models.CharField(max_length=100, blank=True)
    delivery_reported_at = models.DateTimeField(null=True, blank=True)
    # Makes queuing idempotent: reprocessing a payment does not send its receipt twice.
    dedupe_key = models.CharField(max_length=128, null=True, blank=True, unique=True)
    borrower = models.ForeignKey(Borrower, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Free-form context for the channel (e.g. buttons for a Telegram alert).
    context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The delivery queue, in the order core.queue claims it (see WorkQueue).
            models.Index(fields=["status", "next_attempt_at", "id"], name="outbox_due"),
            # Delivery reports find their message by the provider's id.
            models.Index(fields=["provider_id"], name="outbox_provider_id"),
        ]
        constraints = [
            one_of("status", OutboxStatus, "outbox_status_known"),
            one_of("channel", OutboxChannel, "outbox_channel_known"),
        ]

    def __str__(self) -> str:
        recipient = mask_phone(self.recipient) if self.channel == self.Channel.SMS else self.recipient
        return f"{self.channel} to {recipient} ({self.status})"


class OpsAlert(models.TextChoices):
    """The operational checks that page staff (``payments.services.monitoring``, ``core.services.ops``)."""

    SILENCE = "silence", "No confirmations arriving"
    FAILURE_RATE = "failure_rate", "Too many failed or unmatched payments"
    BACKLOG = "backlog", "Payments waiting for the worker"
    OUTBOX = "outbox", "Deliveries failing on a channel"


class OpsIncident(models.Model):
    """One episode of an operational alert: opened when a check first finds the problem, resolved when
    it clears. Staff are told once at each end; the open one for a ``key`` is unique, so a problem
    that lasts is one incident, not one per check."""

    Alert = OpsAlert

    alert = models.CharField(max_length=16, choices=Alert.choices)
    # The alert and what it is about: "backlog", "silence:600984", "outbox:sms".
    key = models.CharField(max_length=64)
    opened_at = models.DateTimeField()
    detail = models.TextField(help_text="what the check found when it opened")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True, help_text="what the check found when it cleared")

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=Q(resolved_at__isnull=True), name="ops_incident_one_open_per_key"
            ),
            one_of("alert", OpsAlert, "ops_incident_alert_known"),
        ]

    def __str__(self) -> str:
        return f"{self.key} since {self.opened_at:%Y-%m-%d %H:%M}" + (
            " (resolved)" if self.resolved_at else ""
        )
