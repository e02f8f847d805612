"""When a database work queue tries an item again after a transient failure.

The queues (payments to post, outbox messages to send) keep their retries in the row itself
(``attempts``, ``next_attempt_at``), so a retry survives a worker's death and any worker can take it.
That is why this is a small policy object rather than Celery's ``autoretry_for`` (a retry there is a
message on the broker, lost with it) or tenacity (which retries a call inside one process).

The Daraja client's "refresh the access token and send the call again once"
(``payments.clients.daraja.client.DarajaClient._post``) is not such a retry and does not use this
policy: it renews a stale credential at once, with no backoff and no stored attempt (the reason is
at that method).
"""

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: ``first`` after the first failed attempt, doubling after each one, never
    more than ``cap``; an item is given up after ``max_attempts`` attempts in all."""

    first: timedelta
    max_attempts: int
    cap: timedelta | None = None

    def delay(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th attempt failed (1 for the first)."""
        delay = self.first * 2 ** max(0, attempts - 1)
        return min(delay, self.cap) if self.cap is not None else delay

    def exhausted(self, attempts: int) -> bool:
        """Whether an item that has used ``attempts`` attempts may not be tried again."""
        return attempts >= self.max_attempts
