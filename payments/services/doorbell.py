"""The payments queue's doorbell: how a stored payment wakes the workers (``core.doorbell``).

Rung by the services that store payments (a confirmation, a recovered payment), by the sweeper and by
a worker that connects to its broker; it names the drain task rather than importing it, so services
never import tasks.
"""

from django.conf import settings

from core import doorbell

DOORBELL_KEY = "payments:doorbell"
DRAIN_TASK = "payments.drain_received"  # payments.tasks.drain_received_task


def ring_doorbell(*, force: bool = False) -> bool:
    """Enqueue ``PAYMENTS_DRAINERS`` drain tasks unless a ring is already pending. Returns whether it rang."""
    return doorbell.ring(
        DOORBELL_KEY,
        DRAIN_TASK,
        copies=settings.PAYMENTS_DRAINERS,
        force=force,
        debounce=settings.PAYMENTS_DOORBELL_DEBOUNCE,
    )
