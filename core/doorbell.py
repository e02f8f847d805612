"""A doorbell in the shared cache: the way rows waiting in a database queue wake the workers.

The database row is the work; Celery only carries "there is work". ``ring`` enqueues the drain
task(s) unless a ring is already pending, so a burst of rows costs one cache call each and a
handful of task messages in all. A drain ``rearm``s the bell before it looks for work: a row
committed after that rings again, a row committed before it is found by the drain. If a drain is
lost before it starts, the bell stops blocking new rings after ``TTL`` seconds, and the periodic
sweepers ring with ``force`` for anything left due.
"""

from celery import Task
from django.core.cache import cache

TTL = 10


def ring(key: str, drain: Task, *, copies: int = 1, force: bool = False) -> bool:
    """Enqueue ``copies`` of ``drain`` unless a ring is pending (or ``force``). Returns whether it rang."""
    if not cache.add(key, 1, timeout=TTL) and not force:
        return False
    for _ in range(copies):
        drain.delay()
    return True


def rearm(key: str) -> None:
    cache.delete(key)
