"""Reads for the staff bot's commands and digest."""

import datetime

from django.db.models import Count, QuerySet

from bots import texts
from core.dates import NAIROBI
from core.models import User
from payments.models import MpesaTransaction, TransactionSource
from payments.selectors import reconciliation_report
from payments.stats import payment_stats


def day_summary_text(*, user: User, day: datetime.date, title: str, reconciliation: bool = False) -> str:
    """One Nairobi day's payments that ``user`` may see (count, amount, matched rate) and what is
    still open (unmatched, failed, held, not reviewed; any day), in words. With ``reconciliation``,
    also what that day's payments came by other roads than their callback, and (for admins, whose
    view is the whole paybill) the balance gaps still open."""
    visible = MpesaTransaction.objects.visible_to(user)
    end_of_day = datetime.datetime.combine(day, datetime.time.max, tzinfo=NAIROBI)
    today = payment_stats(queryset=visible, now=end_of_day)["periods"]["today"]
    open_by_status = dict(
        visible.needing_attention()
        .order_by()
        .values_list("status")
        .annotate(count=Count("id"))
        .values_list("status", "count")
    )
    return texts.stats_text(
        title=title,
        count=today["received"]["count"],
        amount=today["received"]["amount"],
        matched_rate=today["success_rate"],
        unmatched=open_by_status.get(MpesaTransaction.Status.UNMATCHED, 0),
        failed=open_by_status.get(MpesaTransaction.Status.FAILED, 0),
        held=open_by_status.get(MpesaTransaction.Status.HELD, 0),
    ) + (("\n" + _reconciliation_text(user=user, day=day)) if reconciliation else "")


def _reconciliation_text(*, user: User, day: datetime.date) -> str:
    report = reconciliation_report(day=day, user=user)
    recovered = {
        TransactionSource(source).label.lower(): (totals["count"], totals["amount"])
        for source, totals in report["by_source"].items()
        if source != TransactionSource.CALLBACK
    }
    gaps = [gap["gap"] for gap in report["drift"]]  # empty for officers: gaps are in no portfolio
    return texts.reconciliation_text(recovered=recovered, gaps=gaps)


def pending_for(user: User) -> QuerySet[MpesaTransaction]:
    """Unmatched and failed payments not reviewed yet that ``user`` may see, oldest first."""
    return MpesaTransaction.objects.visible_to(user).needing_attention().order_by("trans_time", "id")


def digest_recipients() -> QuerySet[User]:
    return User.objects.filter(
        is_active=True, is_staff=True, telegram_chat_id__isnull=False, telegram_unreachable=False
    )
