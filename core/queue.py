"""Work queues kept in the database: the rows are the work, Celery only carries "there is work".

A queue is a model with ``attempts`` and ``next_attempt_at``, and a queryset of its due rows. Payments
to post (``payments.services.processing``) and messages to send (``core.services.outbox``) are such
queues; both are drained the same way:

- ``claim_batch`` takes the oldest due rows no other worker holds (``SELECT ... FOR UPDATE SKIP
  LOCKED``, so any number of workers drain side by side), counts the attempt and leases the row, in a
  transaction of its own that commits before any work is done. A worker that dies mid-item has used an
  attempt and the row comes back when its lease ends; a row that keeps killing workers is given up after
  its ``RetryPolicy``'s last attempt instead of blocking the queue.
- ``drain`` is the body of a drain task: it re-arms the queue's doorbell (``core.doorbell``), works
  item after item until none is due, asks Celery to come back when an item that failed transiently is
  due again, and hands over to a fresh task after ``batch`` items so tasks stay short.
- Each queue's sweeper (Celery beat) calls ``core.sweep.sweep``: it releases what a dead worker left
  behind and rings for anything due.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from celery import Task
from django.db import models, transaction
from django.utils import timezone

from core import doorbell
from core.retry import RetryPolicy

Row = TypeVar("Row", bound=models.Model)

# Items one drain task works before handing over to a fresh task (keeps tasks short).
DRAIN_BATCH = 200


def claim_batch(
    due: "models.QuerySet[Row]",
    *,
    lease: timedelta,
    limit: int,
    retry: RetryPolicy | None = None,
    give_up: Callable[[Row], None] | None = None,
    **marks: Any,
) -> list[Row]:
    """Claim up to ``limit`` of the oldest rows of ``due`` (by ``next_attempt_at``, then id) that no
    other worker holds, in one transaction committed at once; returns them in that order.

    Each claimed row has an attempt counted, ``next_attempt_at`` set to ``lease`` from now (the row is
    the claimer's until then) and ``marks`` set (e.g. a status): one UPDATE for all of them. With
    ``retry``, a row that has used all its attempts is not claimed but handed to ``give_up`` (in the
    same transaction) and returned as it is then; the caller tells them apart by their attempts.
    Claiming a few rows at once saves a transaction per row; the last of them waits for the ones
    before it, so ``limit`` times the time one takes must stay well inside ``lease``."""
    with transaction.atomic():
        rows = list(
            due.select_for_update(of=("self",), skip_locked=True).order_by("next_attempt_at", "id")[:limit]
        )
        claimed = []
        for row in rows:
            if retry is not None and give_up is not None and retry.exhausted(row.attempts):  # type: ignore[attr-defined]
                give_up(row)
            else:
                claimed.append(row)
        if claimed:
            until = timezone.now() + lease
            due.model._default_manager.filter(pk__in=[row.pk for row in claimed]).update(
                attempts=models.F("attempts") + 1, next_attempt_at=until, **marks
            )
            for row in claimed:
                row.attempts += 1  # type: ignore[attr-defined]
                row.next_attempt_at = until  # type: ignore[attr-defined]
                for name, value in marks.items():
                    setattr(row, name, value)
    return rows


def claim_next(
    due: "models.QuerySet[Row]",
    *,
    lease: timedelta,
    retry: RetryPolicy | None = None,
    give_up: Callable[[Row], None] | None = None,
    **marks: Any,
) -> Row | None:
    """Claim the oldest row of ``due`` that no other worker holds (``claim_batch`` of one); ``None``
    when nothing is due."""
    rows = claim_batch(due, lease=lease, limit=1, retry=retry, give_up=give_up, **marks)
    return rows[0] if rows else None


@dataclass(frozen=True, slots=True)
class Worked:
    """What one unit of a drain did: ``done`` items. ``retry_in``: an item failed transiently and is due again in
    that many seconds (the drain asks Celery to come back then). ``stop``: the queue itself cannot be
    read now; the drain stops (its delayed return tries again)."""

    retry_in: float | None = None
    stop: bool = False
    done: int = 1  # items worked (a unit may claim and work several)


def drain(
    *,
    task: Task,
    bell: str,
    work: Callable[[], Worked | None],
    batch: int = DRAIN_BATCH,
    debounce: float = 0.0,
) -> int:
    """Run ``work`` (one unit of one or more items; ``None`` when nothing is due) until the queue is empty or ``batch``
    items are done; returns how many were done. ``task`` is the drain task itself.

    With a ``debounce`` (the doorbell's), a drain that finds nothing keeps looking until ``debounce``
    seconds after it re-armed the bell: web processes that rang just before may skip ringing for that
    long, and this drain is the one that must find their rows (``core.doorbell``)."""
    rearmed_at = doorbell.rearm(bell)
    done = 0
    while done < batch:
        worked = work()
        if worked is None:
            wait = doorbell.settled(rearmed_at, debounce)
            if not wait:
                return done
            time.sleep(wait)
            continue
        if worked.retry_in is not None and not task.request.is_eager:
            # Run in-process (no broker), a countdown would run at once and again, in a loop; there
            # the next ring or the sweeper comes back for it.
            task.apply_async(countdown=max(1, math.ceil(worked.retry_in)))
        if worked.stop:  # a unit that stops counts nothing
            return done
        done += worked.done
    task.delay()  # more may be waiting: continue in a fresh task
    return done
