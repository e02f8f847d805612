"""Reads of the borrower channels: who is calling, their loans and payments, as the menu shows them."""

from django.db.models import CharField, F, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from core.exceptions import InvalidPhoneNumber, NotFound
from core.models import Borrower, Loan, OutboxMessage, Repayment, User
from core.phones import normalize_phone
from core.selectors import borrower_find_by_phone
from payments.models import MpesaConfiguration
from payments.selectors import payments_of_borrower
from ussd.menu import LoanView, PaymentView
from ussd.models import IncomingSms, UssdSessionEnd
from ussd.schemas import Direction

RECENT_PAYMENTS = 5


def borrower_for_channel(*, phone: str) -> Borrower | None:
    """The borrower who owns ``phone`` in any form Africa's Talking sends (``+2547...``, a ``+``
    decoded to a space), or ``None`` for a number that is not a borrower's (or not a number)."""
    try:
        return borrower_find_by_phone(phone=phone)
    except (InvalidPhoneNumber, NotFound):
        return None


def loan_views(*, borrower: Borrower) -> list[LoanView]:
    """The borrower's active loans, oldest due first, each with its last payment (one query)."""
    last = Repayment.objects.filter(
        loan=OuterRef("pk"), kind=Repayment.Kind.POSTING, reversal__isnull=True
    ).order_by("-posted_at", "-id")
    loans = (
        Loan.objects.active()
        .filter(borrower=borrower)
        .annotate(
            last_amount=Subquery(last.values("amount")[:1]),
            last_posted_at=Subquery(last.values("posted_at")[:1]),
        )
        .order_by("due_date", "id")
    )
    return [
        LoanView(
            loan_number=loan.loan_number,
            outstanding=loan.outstanding,
            penalties=loan.penalties,
            fees=loan.fees,
            interest=loan.interest,
            principal=loan.principal,
            due_date=loan.due_date,
            last_paid_amount=loan.last_amount,
            last_paid_on=loan.last_posted_at.date() if loan.last_posted_at else None,
        )
        for loan in loans
    ]


def payment_views(*, borrower: Borrower, limit: int = RECENT_PAYMENTS) -> list[PaymentView]:
    """The borrower's latest M-Pesa payments, newest first, each with the loans it went to (none
    while it is not matched)."""
    views = []
    for tx in payments_of_borrower(borrower=borrower)[:limit]:
        loans = tuple(a.loan.loan_number for a in tx.allocations.all() if a.loan is not None)
        views.append(
            PaymentView(
                trans_id=tx.trans_id,
                amount=tx.amount,
                paid_on=timezone.localtime(tx.trans_time).date(),
                loan_numbers=loans,
            )
        )
    return views


def paybill_number() -> str:
    """The short code borrowers pay into (the active M-Pesa configuration's), or ``""``."""
    config = MpesaConfiguration.objects.filter(is_active=True).order_by("-updated_at").first()
    return config.business_short_code if config else ""


def failed_sessions_today() -> int:
    """USSD sessions Africa's Talking reported ``Failed`` since midnight (Nairobi), for the dashboard."""
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return UssdSessionEnd.objects.filter(
        status=UssdSessionEnd.Status.FAILED, received_at__gte=midnight
    ).count()


# --- the SMS log (GET /api/v1/messages) ---------------------------------------------------------

_COLUMNS = ("direction", "number", "text_value", "state", "time")


def _incoming() -> QuerySet:
    return IncomingSms.objects.annotate(
        direction=Value(Direction.IN.value, output_field=CharField()),
        number=F("phone"),
        text_value=F("text"),
        state=Value("received", output_field=CharField()),
        time=F("received_at"),
    )


def _outgoing() -> QuerySet:
    return OutboxMessage.objects.filter(channel=OutboxMessage.Channel.SMS).annotate(
        direction=Value(Direction.OUT.value, output_field=CharField()),
        number=F("recipient"),
        text_value=F("body"),
        state=Coalesce(NullIf(F("delivery_status"), Value("")), F("status"), output_field=CharField()),
        time=F("created_at"),
    )


def messages_for(*, user: User, phone: str | None, direction: Direction | None) -> QuerySet:
    """The SMS ``user`` may see, as rows of ``_COLUMNS``, newest first. Raises ``InvalidPhoneNumber``."""
    parts = []
    number = normalize_phone(phone) if phone else None
    for kind, queryset, phone_field in (
        (Direction.IN, _incoming(), "phone"),
        (Direction.OUT, _outgoing(), "recipient"),
    ):
        if direction is not None and direction != kind:
            continue
        if not user.is_admin:
            queryset = queryset.filter(borrower__in=Borrower.objects.visible_to(user))
        if number is not None:
            queryset = queryset.filter(**{phone_field: number})
        parts.append(queryset.order_by().values(*_COLUMNS))
    rows = parts[0] if len(parts) == 1 else parts[0].union(parts[1], all=True)
    return rows.order_by("-time")
