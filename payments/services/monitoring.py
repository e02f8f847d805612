"""The M-Pesa engine's operational checks, run every minute by Celery beat (``payments.ops_check``).

Each check looks at the database as of ``now`` (passed in, so tests can hold the clock) and
returns ``core.services.ops.Finding``s; ``ops_checks_run`` adds the outbox's check and opens or
resolves incidents, which tell admins once at each end of a problem:

- **silence**: an active paybill has had no confirmation for ``ALERT_SILENCE_MINUTES`` during
  ``ALERT_HOURS`` (Nairobi), and it received payments in the same clock hour on one of the previous
  7 days. It clears when a confirmation arrives; outside the hours, or at an hour with no history,
  it cannot tell and an open incident stays open.
- **failure_rate**: failed + unmatched above ``ALERT_FAILURE_RATE`` of at least
  ``FAILURE_RATE_MIN_PAYMENTS`` payments in the last 30 minutes; with fewer it cannot tell.
- **backlog**: the oldest payment waiting for the worker (``received``) is older than
  ``ALERT_BACKLOG_SECONDS``: the worker is down or behind.

Windows of payments are taken on ``trans_time`` (M-Pesa's time of the payment, indexed), and the
last confirmation of a paybill is its newest row, so no check scans the whole table.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone

from core.dates import NAIROBI
from core.models import OpsAlert, OpsIncident
from core.services.ops import Finding, local_clock, ops_incident_update, outbox_findings
from payments.models import MpesaConfiguration, MpesaTransaction
from payments.selectors import confirmation_last_at, payments_recent_by_status

FAILURE_RATE_MIN_PAYMENTS = 20
HISTORY_DAYS = 7


def ops_checks_run(*, now: datetime) -> list[OpsIncident]:
    """Run every operational check as of ``now`` and open or resolve incidents (admins are told).
    Returns the incidents opened or resolved by this run."""
    findings = [
        *silence_findings(now=now),
        failure_rate_finding(now=now),
        backlog_finding(now=now),
        *outbox_findings(now=now),
    ]
    changed = [ops_incident_update(finding=finding, now=now) for finding in findings]
    return [incident for incident in changed if incident is not None]


def within_alert_hours(moment: datetime) -> bool:
    """Whether ``moment`` falls in ``ALERT_HOURS`` (``HH:MM-HH:MM``, Nairobi; may wrap midnight)."""
    start, end = (_minutes(part) for part in settings.ALERT_HOURS.split("-"))
    local = timezone.localtime(moment, NAIROBI)
    minute = local.hour * 60 + local.minute
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def _minutes(hh_mm: str) -> int:
    hours, minutes = hh_mm.strip().split(":")
    return int(hours) * 60 + int(minutes)


def silence_findings(*, now: datetime) -> list[Finding]:
    """One finding per active paybill: no confirmation for ``ALERT_SILENCE_MINUTES`` when one was due."""
    minutes = settings.ALERT_SILENCE_MINUTES
    since = now - timedelta(minutes=minutes)
    findings = []
    for config in MpesaConfiguration.objects.filter(is_active=True).order_by("business_short_code"):
        code = config.business_short_code
        last = confirmation_last_at(config=config, since=since)
        if last is not None and last >= since:
            firing: bool | None = False
            detail = f"M-Pesa confirmations are arriving again on paybill {code} (last {local_clock(last)})."
        elif within_alert_hours(now) and _paid_at_this_hour_before(config, now=now):
            firing = True
            seen = f"the last {local_clock(last)}" if last else "none received yet"
            detail = (
                f"No M-Pesa confirmation on paybill {code} for {minutes} min ({seen}), at an hour it "
                "usually receives payments. Check the callback URL registration, the TLS certificate "
                "and the firewall."
            )
        else:
            firing, detail = None, f"Paybill {code} is quiet at an hour when it usually is."
        findings.append(Finding(alert=OpsAlert.SILENCE, key=f"silence:{code}", firing=firing, detail=detail))
    return findings


def _paid_at_this_hour_before(config: MpesaConfiguration, *, now: datetime) -> bool:
    """Whether the paybill received a payment in this clock hour (Nairobi) on one of the previous
    ``HISTORY_DAYS`` days."""
    hour = timezone.localtime(now, NAIROBI).replace(minute=0, second=0, microsecond=0)
    same_hours = Q()
    for days in range(1, HISTORY_DAYS + 1):
        start = hour - timedelta(days=days)
        same_hours |= Q(trans_time__gte=start, trans_time__lt=start + timedelta(hours=1))
    return MpesaTransaction.objects.filter(same_hours, config=config).exists()


def failure_rate_finding(*, now: datetime) -> Finding:
    """Failed + unmatched over ``ALERT_FAILURE_RATE`` of the payments of the last 30 minutes."""
    counts = payments_recent_by_status(now=now)
    total = sum(counts.values())
    bad = counts.get(MpesaTransaction.Status.FAILED, 0) + counts.get(MpesaTransaction.Status.UNMATCHED, 0)
    limit = settings.ALERT_FAILURE_RATE
    share = f"{bad} of {total} payments in the last 30 min failed or found no borrower"
    if total < FAILURE_RATE_MIN_PAYMENTS:
        firing: bool | None = None
        detail = f"{share}: too few to judge."
    elif bad / total > limit:
        firing = True
        detail = f"{share} ({bad / total:.0%}, over {limit:.0%}). See the payments needing attention."
    else:
        firing = False
        detail = f"{share} ({bad / total:.0%}, within {limit:.0%})."
    return Finding(alert=OpsAlert.FAILURE_RATE, key="failure_rate", firing=firing, detail=detail)


def backlog_finding(*, now: datetime) -> Finding:
    """The oldest payment still ``received`` older than ``ALERT_BACKLOG_SECONDS``."""
    waiting = MpesaTransaction.objects.filter(status=MpesaTransaction.Status.RECEIVED).aggregate(
        count=Count("id"), oldest=Min("received_at")
    )
    limit = settings.ALERT_BACKLOG_SECONDS
    age = (now - waiting["oldest"]).total_seconds() if waiting["oldest"] else 0.0
    if age > limit:
        return Finding(
            alert=OpsAlert.BACKLOG,
            key="backlog",
            firing=True,
            detail=(
                f"{waiting['count']} payment(s) waiting to be posted, the oldest for {age:.0f} s "
                f"(limit {limit} s): the payment worker is down or behind."
            ),
        )
    return Finding(
        alert=OpsAlert.BACKLOG,
        key="backlog",
        firing=False,
        detail=f"The payment worker has caught up: no payment has waited more than {limit} s.",
    )
