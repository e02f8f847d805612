"""Operational alerts: checks find problems, incidents remember them, staff hear once at each end.

A check returns ``Finding``s; ``ops_incident_update`` opens an ``OpsIncident`` the first time a
finding fires and resolves it the first time it clears, queuing a message to admins each time
(``outbox_queue_for_staff``, on the channels each admin can be reached on). A finding that cannot tell (outside
alert hours, too few payments to judge) changes nothing. Every incident stays in Django admin.
The outbox's own check lives here; the payment checks, and the run every minute, in
``payments.services.monitoring`` (core imports no other app).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Max, Min
from django.utils import timezone

from core.models import OpsAlert, OpsIncident, OutboxMessage
from core.services.outbox import outbox_queue_for_staff, staff_to_alert

logger = logging.getLogger(__name__)

OUTBOX_FAILING_FOR = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Finding:
    """What one check found now. ``firing``: the problem is there (True), is not (False), or the check
    cannot tell (None: leave any open incident as it is). ``detail`` says what was found, in words
    for staff, whichever way it went; it never names a person."""

    alert: OpsAlert
    key: str
    firing: bool | None
    detail: str


def ops_incident_update(*, finding: Finding, now: datetime) -> OpsIncident | None:
    """Open or resolve the incident of ``finding.key`` as the finding says, telling admins once each
    time. Returns the incident opened or resolved, or ``None`` when nothing changed."""
    if finding.firing is None:
        return None
    try:
        with transaction.atomic():
            incident = (
                OpsIncident.objects.select_for_update()
                .filter(key=finding.key, resolved_at__isnull=True)
                .first()
            )
            if finding.firing and incident is None:
                incident = OpsIncident.objects.create(
                    alert=finding.alert, key=finding.key, opened_at=now, detail=finding.detail
                )
                _tell(incident, "opened", f"ALERT: {finding.detail}")
                logger.warning("ops alert %s opened: %s", finding.key, finding.detail)
                return incident
            if not finding.firing and incident is not None:
                incident.resolved_at = now
                incident.resolution = finding.detail
                incident.save(update_fields=["resolved_at", "resolution"])
                minutes = max(1, round((now - incident.opened_at).total_seconds() / 60))
                _tell(incident, "resolved", f"RESOLVED after {minutes} min: {finding.detail}")
                logger.warning("ops alert %s resolved: %s", finding.key, finding.detail)
                return incident
    except IntegrityError:
        # Another run opened the same incident meanwhile (only one beat should run, but two can):
        # theirs stands, and they told staff.
        logger.info("ops alert %s was opened by another run", finding.key)
    return None


def _tell(incident: OpsIncident, event: str, body: str) -> None:
    outbox_queue_for_staff(
        users=staff_to_alert(),
        body=body,
        dedupe_key=f"ops:{incident.pk}:{event}",
        context={"kind": "ops", "alert": incident.alert},
    )


def outbox_findings(*, now: datetime) -> list[Finding]:
    """One finding per channel: firing when deliveries on it have failed for ``OUTBOX_FAILING_FOR``.

    Since the channel's last successful delivery, a message that is still undelivered with an error
    was first tried that long ago or more (messages are tried when queued), and one failed or is
    waiting to retry within that time. It clears when a message goes out on the channel, or when
    that long passes with no failed attempt (nothing is being tried: nothing to say)."""
    window_start = now - OUTBOX_FAILING_FOR
    findings = []
    for channel in OutboxMessage.Channel.values:
        on_channel = OutboxMessage.objects.filter(channel=channel)
        last_sent = on_channel.filter(status=OutboxMessage.Status.SENT).aggregate(at=Max("sent_at"))["at"]
        failing = on_channel.filter(
            status__in=[OutboxMessage.Status.PENDING, OutboxMessage.Status.FAILED], attempts__gt=0
        ).exclude(last_error="")
        if last_sent is not None:
            failing = failing.filter(created_at__gt=last_sent)
        first = failing.aggregate(at=Min("created_at"))["at"]
        # next_attempt_at is when the last attempt was claimed (failed) or when the next is due (retry).
        fired = (
            first is not None
            and first <= window_start
            and failing.filter(next_attempt_at__gte=window_start).exists()
        )
        if fired and first is not None:
            last = f"last delivered {local_clock(last_sent)}" if last_sent else "none delivered yet"
            detail = (
                f"Outbox: {channel} deliveries have been failing for "
                f"{round((now - first).total_seconds() / 60)} min ({last})."
            )
        else:
            detail = f"Outbox: {channel} deliveries are no longer failing."
        findings.append(Finding(alert=OpsAlert.OUTBOX, key=f"outbox:{channel}", firing=fired, detail=detail))
    return findings


def local_clock(moment: datetime) -> str:
    """A moment as staff read it in a message: "04 Dec 09:12", Nairobi time."""
    return timezone.localtime(moment).strftime("%d %b %H:%M")
