"""The SMS log: ``GET /api/v1/messages``, incoming and outgoing SMS, newest first. Staff only;
an officer sees the messages of their portfolio's borrowers."""

from django.db.models import CharField, F, QuerySet, Value
from django.db.models.functions import Coalesce, NullIf
from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import LimitOffsetPagination, paginate

from core.auth import api_user
from core.models import Borrower, OutboxMessage
from core.phones import normalize_phone
from core.schemas import ErrorOut
from ussd.models import IncomingSms
from ussd.schemas import Direction, MessageFiltersIn, MessageOut

router = Router(tags=["borrower channels"])

ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
MAX_PAGE = 500
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


def messages_for(*, user, phone: str | None, direction: Direction | None) -> QuerySet:
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


@router.get("/messages", response={200: list[MessageOut], **ERRORS})
@paginate(LimitOffsetPagination, max_limit=MAX_PAGE)
def message_list(request: HttpRequest, filters: Query[MessageFiltersIn]):
    """SMS in and out, newest first, paginated with ``limit`` and ``offset`` (``items``, ``count``).
    ``phone`` in any form; ``direction`` ``in`` or ``out``."""
    return messages_for(user=api_user(request), phone=filters.phone, direction=filters.direction)
