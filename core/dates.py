"""Kenyan time. M-Pesa stamps transactions in Nairobi time (UTC+3, no daylight saving), and the
lender's days (dashboards, filters, statements) are Nairobi days whatever the server's clock says."""

import datetime
from zoneinfo import ZoneInfo

NAIROBI = ZoneInfo("Africa/Nairobi")


def nairobi_midnight(day: datetime.date) -> datetime.datetime:
    """The aware moment a Nairobi day begins: ``[nairobi_midnight(d), nairobi_midnight(d + 1 day))``
    holds exactly that day's moments."""
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=NAIROBI)
