"""The sweeper of a database work queue (``core.queue``): what each queue's periodic task does.

Nothing in a queue depends on a message arriving. A ring can be lost (Redis was down when the row
committed, the drain task died before it started) and a worker can die holding a row. Once a minute
(Celery beat) each queue's sweeper calls ``sweep``: it puts back in the queue what a dead worker left
behind, gives up such a row if that was its last attempt, and rings the queue's doorbell when
anything is due.
"""

from collections.abc import Callable, Mapping
from typing import Any

from django.db import models

from core.retry import RetryPolicy


def sweep(
    *,
    due: models.QuerySet,
    ring: Callable[..., bool],
    abandoned: models.QuerySet | None = None,
    release: Mapping[str, Any] | None = None,
    retry: RetryPolicy | None = None,
    give_up: Mapping[str, Any] | None = None,
) -> int:
    """Release ``abandoned`` rows, then ring (``ring(force=True)``) if any row of ``due`` is due.
    Returns how many rows were due.

    ``abandoned`` are rows a worker claimed and should have finished long ago (its process died):
    each is updated with ``release``, which puts it back in the queue. With ``retry`` and ``give_up``,
    an abandoned row that has used all its attempts is updated with ``give_up`` instead. ``due`` is
    counted after the release, so a released row that is due is rung for at once. A queue whose
    claims end by themselves (a lease that expires) has nothing to release and passes ``due`` only,
    usually with an age condition: a row a few seconds old still has its own ring coming."""
    if abandoned is not None:
        if not release:
            raise TypeError("sweep: abandoned rows need the fields that release them")
        if retry is not None and give_up is not None:
            # RetryPolicy.exhausted, as a query.
            abandoned.filter(attempts__gte=retry.max_attempts).update(**give_up)
            abandoned = abandoned.filter(attempts__lt=retry.max_attempts)
        abandoned.update(**release)
    count = due.count()
    if count:
        ring(force=True)
    return count
