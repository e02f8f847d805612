from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET

from admin_ui.charts import daily_volume_legend, daily_volume_svg
from core.http import staff_user
from payments.filters import transactions_for_user
from payments.models import NEEDS_STAFF, MpesaTransaction, MpesaTransactionQuerySet
from payments.stats import payment_stats

RECENT = 10
PERIOD_LABELS = (("today", "Today"), ("last_7_days", "Last 7 days"), ("last_30_days", "Last 30 days"))

Status = MpesaTransaction.Status


def attention_by_status(payments: MpesaTransactionQuerySet) -> dict[str, int]:
    """How many of ``payments`` need people, per status: ``{"unmatched": n, "failed": n, "held": n}``, counting
    the same payments as ``payment_stats()["needing_attention"]`` (not reviewed), in one query."""
    rows = payments.needing_attention().order_by().values("status").annotate(count=Count("id"))
    counts = {row["status"]: row["count"] for row in rows}
    return {status: counts.get(status, 0) for status in NEEDS_STAFF}


@staff_member_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = staff_user(request)
    visible = MpesaTransaction.objects.visible_to(user)
    stats = payment_stats(queryset=visible)
    return render(
        request,
        "admin_ui/dashboard.html",
        {
            "stats": stats,
            "attention": attention_by_status(visible),
            "periods": [(name, label, stats["periods"][name]) for name, label in PERIOD_LABELS],
            "chart": daily_volume_svg(stats["daily"]),
            "chart_legend": daily_volume_legend(),
            "recent": transactions_for_user(user)[:RECENT],
            "Status": MpesaTransaction.Status,
            "channel_counts": [
                (label, import_string(path)())
                for label, path in getattr(settings, "DASHBOARD_COUNTS", {}).items()
            ],
        },
    )
