"""A doorbell in the shared cache: the way rows waiting in a database queue wake the workers.

The database row is the work; Celery only carries "there is work". ``ring`` enqueues the drain
task(s) unless a ring is already pending, so a burst of rows costs one cache call each and a
handful of task messages in all. A drain ``rearm``s the bell before it looks for work: a row
committed after that rings again, a row committed before it is found by the drain. If a drain is
lost before it starts, the bell stops blocking new rings after ``TTL`` seconds, and the periodic
sweepers ring with ``force`` for anything left due.

With a ``debounce``, a process that asked the cache less than ``debounce`` seconds ago does not ask
again: its row is announced by that earlier ask. At that ask the bell was pending (set then or
before), so some drain re-arms it at or after that moment; a drain that keeps looking for work until
``debounce`` seconds after its re-arm (``settled``) therefore finds every row committed before
an ask that was skipped.
"""

import time

from celery import Task
from django.core.cache import cache

TTL = 10

_last_asked: dict[str, float] = {}  # per process: when this process last asked the cache, by key


def ring(key: str, drain: Task, *, copies: int = 1, force: bool = False, debounce: float = 0.0) -> bool:
    """Enqueue ``copies`` of ``drain`` unless a ring is pending (or ``force``). Returns whether it rang."""
    if debounce and not force:
        last = _last_asked.get(key)
        if last is not None and time.monotonic() - last < debounce:
            return False
    # Taken before the call: the drain that re-arms this ask's bell does so after this moment.
    asked_at = time.monotonic()
    rang = cache.add(key, 1, timeout=TTL) or force
    _last_asked[key] = asked_at
    if rang:
        for _ in range(copies):
            drain.delay()
    return rang


def rearm(key: str) -> float:
    """Re-arm the bell; returns when (``time.monotonic()``), for ``settled``."""
    cache.delete(key)
    return time.monotonic()


def settled(rearmed_at: float, debounce: float) -> float:
    """Seconds a drain that found no work must still wait before it may stop: rows committed by a
    process that skipped its ring may appear until ``debounce`` seconds after the re-arm."""
    return max(0.0, rearmed_at + debounce - time.monotonic())
