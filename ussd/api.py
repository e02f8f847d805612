"""The SMS log: ``GET /api/v1/messages``, incoming and outgoing SMS, newest first. Staff only;
an officer sees the messages of their portfolio's borrowers."""

from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import LimitOffsetPagination, paginate

from core.auth import api_user
from core.schemas import ErrorOut
from ussd.schemas import MessageFiltersIn, MessageOut
from ussd.selectors import messages_for

router = Router(tags=["borrower channels"])

ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
MAX_PAGE = 500


@router.get("/messages", response={200: list[MessageOut], **ERRORS})
@paginate(LimitOffsetPagination, max_limit=MAX_PAGE)
def message_list(request: HttpRequest, filters: Query[MessageFiltersIn]):
    """SMS in and out, newest first, paginated with ``limit`` and ``offset`` (``items``, ``count``).
    ``phone`` in any form; ``direction`` ``in`` or ``out``."""
    return messages_for(user=api_user(request), phone=filters.phone, direction=filters.direction)
