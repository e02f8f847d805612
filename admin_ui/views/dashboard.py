from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from admin_ui.charts import daily_volume_svg
from payments.filters import transactions_for_user
from payments.models import MpesaTransaction
from payments.stats import payment_stats

RECENT = 10
PERIOD_LABELS = (("today", "Today"), ("last_7_days", "Last 7 days"), ("last_30_days", "Last 30 days"))


@staff_member_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    stats = payment_stats(queryset=MpesaTransaction.objects.visible_to(request.user))
    return render(
        request,
        "admin_ui/dashboard.html",
        {
            "stats": stats,
            "periods": [(name, label, stats["periods"][name]) for name, label in PERIOD_LABELS],
            "chart": daily_volume_svg(stats["daily"]),
            "recent": transactions_for_user(request.user)[:RECENT],
            "Status": MpesaTransaction.Status,
        },
    )
