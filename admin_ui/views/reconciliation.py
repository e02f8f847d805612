"""The reconciliation page: one Nairobi day, by source and status, the payments that came by a
second road, and money the paybill received that the system never saw (balance gaps)."""

import datetime

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from core.dates import nairobi_midnight
from core.http import staff_user
from payments.filters import transactions_for_user
from payments.models import MpesaTransaction
from payments.selectors import reconciliation_report

# A day's recovered payments listed on the page (the rest are in the transaction list).
RECOVERED_SHOWN = 200


@staff_member_required
@require_GET
def reconciliation(request: HttpRequest) -> HttpResponse:
    user = staff_user(request)
    try:
        day = datetime.date.fromisoformat(request.GET.get("date") or "")
    except ValueError:
        day = timezone.localdate()
    report = reconciliation_report(day=day, user=user)
    recovered = (
        transactions_for_user(user)
        .filter(
            trans_time__gte=nairobi_midnight(day),
            trans_time__lt=nairobi_midnight(day + datetime.timedelta(days=1)),
        )
        .exclude(source=MpesaTransaction.Source.CALLBACK)[:RECOVERED_SHOWN]
    )
    return render(
        request,
        "admin_ui/reconciliation.html",
        {
            "report": report,
            "day": day,
            "previous": day - datetime.timedelta(days=1),
            "next": day + datetime.timedelta(days=1),
            "recovered": recovered,
            # The selector lists balance gaps to admins only (a gap's money is in no portfolio).
            "gaps_shown": user.is_admin,
            "sources": [
                (label, report["by_source"][value]) for value, label in MpesaTransaction.Source.choices
            ],
            "statuses": [
                (label, report["by_status"][value]) for value, label in MpesaTransaction.Status.choices
            ],
        },
    )
