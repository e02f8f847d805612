"""The payment list (filtered, paginated, exported as CSV) and one payment's page."""

import csv
import json
from collections.abc import Iterator

from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from admin_ui.forms import AssignForm, ReprocessForm, ReverseForm, ReviewForm, TransactionFilterForm
from core.dates import NAIROBI
from core.exceptions import HavenError, NotFound
from core.http import staff_user
from core.logfilters import mask_phone_numbers
from core.models import User
from payments.filters import transaction_get, transactions_filter, transactions_for_user
from payments.models import Allocation, MpesaTransaction
from payments.selectors import transaction_audit_events
from payments.services.actions import REPROCESSABLE

PAGE_SIZE = 50
EXPORT_CHUNK = 500
CSV_HEADER = (
    "trans_id",
    "trans_time",
    "amount",
    "status",
    "identified_by",
    "match_strategy",
    "bill_reference",
    "borrower",
    "msisdn",
    "loan_numbers",
    "source",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def visible_transaction(user: User, trans_id: str) -> MpesaTransaction:
    """The payment ``trans_id`` if ``user`` may see it; ``Http404`` otherwise (whether or not it exists)."""
    try:
        return transaction_get(trans_id=trans_id, user=user)
    except NotFound:
        raise Http404("no such payment") from None


def _filtered(request: HttpRequest) -> tuple[TransactionFilterForm, QuerySet | None]:
    """The filter form and the payments it selects, or ``None`` when the filters are invalid (the
    form then carries the errors, including those ``transactions_filter`` raises)."""
    form = TransactionFilterForm(request.GET)
    if not form.is_valid():
        return form, None
    try:
        return form, transactions_filter(transactions_for_user(staff_user(request)), **form.cleaned_data)
    except HavenError as exc:
        form.add_error(None, exc.detail)
        return form, None


@staff_member_required
@require_GET
def transaction_list(request: HttpRequest) -> HttpResponse:
    form, payments = _filtered(request)
    page = Paginator(
        payments if payments is not None else MpesaTransaction.objects.none(), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "admin_ui/transaction_list.html",
        {"form": form, "page": page, "payments": page.object_list, "filters_valid": payments is not None},
    )


def csv_cell(value: object) -> str:
    """``value`` as text a spreadsheet shows as text: one that would start a formula gets a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_row(tx: MpesaTransaction) -> list[str]:
    loans = [a.loan.loan_number for a in tx.allocations.all() if a.loan is not None]
    return [
        csv_cell(value)
        for value in (
            tx.trans_id,
            tx.trans_time.astimezone(NAIROBI).isoformat(),
            tx.amount,
            tx.status,
            tx.identified_by,
            tx.match_strategy,
            mask_phone_numbers(tx.bill_reference),
            tx.borrower.full_name if tx.borrower is not None else "",
            tx.msisdn_display,
            " ".join(loans),
            tx.source,
        )
    ]


class _Echo:
    """A file that hands back what is written, so ``csv.writer`` can feed a streaming response."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(payments: QuerySet) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    # Only where the money is now: allocations undone by staff are history, not destinations.
    live = Allocation.objects.filter(reversed_at__isnull=True, loan__isnull=False).select_related("loan")
    rows = payments.prefetch_related(Prefetch("allocations", queryset=live))
    for tx in rows.iterator(chunk_size=EXPORT_CHUNK):
        yield writer.writerow(csv_row(tx))


@staff_member_required
@require_GET
def transaction_export(request: HttpRequest) -> HttpResponseBase:
    """Every payment the filters select (not only one page), streamed as CSV."""
    _, payments = _filtered(request)
    if payments is None:
        # The list shows the same filters with their errors.
        return redirect(f"{reverse('admin_ui:transaction-list')}?{request.GET.urlencode()}")
    response = StreamingHttpResponse(_csv_lines(payments), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().astimezone(NAIROBI).strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="mpesa-payments-{stamp}.csv"'
    return response


def payload_for_staff(tx: MpesaTransaction) -> str:
    """The confirmation body the payment came in, pretty-printed when it is JSON, with the payer's
    number shown the way the rest of the page shows it (masked, or the digest shortened)."""
    body = tx.raw_body
    if not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return mask_phone_numbers(body)
    if isinstance(data, dict):
        data = {key: tx.msisdn_display if key.lower() == "msisdn" else value for key, value in data.items()}
    return mask_phone_numbers(json.dumps(data, indent=2, ensure_ascii=False))


@staff_member_required
@require_GET
def transaction_detail(request: HttpRequest, trans_id: str) -> HttpResponse:
    tx = visible_transaction(staff_user(request), trans_id)
    return render(
        request,
        "admin_ui/transaction_detail.html",
        {
            "tx": tx,
            "payload": payload_for_staff(tx),
            "allocations": list(tx.allocations.all()),
            "events": transaction_audit_events(tx),
            # Only a payment still waiting has a next attempt; for the others the field is history.
            "waiting": tx.status == MpesaTransaction.Status.RECEIVED,
            "can_reprocess": tx.status in REPROCESSABLE,
            "can_assign": tx.status != MpesaTransaction.Status.REVERSED,
            "can_review": tx.reviewed_at is None or tx.review_requested_since_reviewed(),
            "can_reverse": staff_user(request).is_admin and tx.status != MpesaTransaction.Status.REVERSED,
            "reprocess_form": ReprocessForm(),
            "assign_form": AssignForm(),
            "review_form": ReviewForm(),
            "reverse_form": ReverseForm(),
        },
    )
