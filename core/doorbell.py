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

import logging
import time
from dataclasses import dataclass

from celery import Task, current_app
from django.core.cache import cache
from django_redis.exceptions import ConnectionInterrupted
from kombu.exceptions import OperationalError as BrokerUnreachable
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

TTL = 10
# While the cache or the broker is down, one warning per this many seconds, with a count.
OUTAGE_LOG_EVERY = 60.0
# What a ring meets when Redis (cache or broker) is unreachable.
OUTAGE_ERRORS = (ConnectionInterrupted, BrokerUnreachable, RedisError, ConnectionError, TimeoutError)

_last_asked: dict[str, float] = {}  # per process: when this process last asked the cache, by key


@dataclass
class _Outage:
    """Per process, for logging only: rings lost since the last warning, and when that was."""

    missed: int = 0
    logged_at: float | None = None


_outage = _Outage()


def ring(key: str, drain: str, *, copies: int = 1, force: bool = False, debounce: float = 0.0) -> bool:
    """Enqueue ``copies`` of the task named ``drain`` unless a ring is pending (or ``force``). Returns
    whether it rang. By name, so that the services that ring never import the tasks that call them.

    With the cache or the broker unreachable it rings nothing and returns ``False``: the work is in
    the database, and a worker drains it when it (re)connects to the broker, or the sweeper rings
    for it. The outage is logged once a minute with the number of rings missed, not per ring."""
    if debounce and not force:
        last = _last_asked.get(key)
        if last is not None and time.monotonic() - last < debounce:
            return False
    # Taken before the call: the drain that re-arms this ask's bell does so after this moment.
    asked_at = time.monotonic()
    try:
        rang = cache.add(key, 1, timeout=TTL) or force
        _last_asked[key] = asked_at
        if rang:
            task = task_named(drain)
            for _ in range(copies):
                task.delay()
    except OUTAGE_ERRORS as exc:
        _log_outage(key, exc)
        return False
    if _outage.logged_at is not None:
        logger.warning(
            "doorbell %s: Redis reachable again (%s more ring(s) missed since the last warning)",
            key,
            _outage.missed,
        )
        _outage.missed, _outage.logged_at = 0, None
    return rang


def task_named(name: str) -> Task:
    """The Celery task registered as ``name``, for code that must enqueue a task without importing the
    module that defines it (services never import tasks)."""
    tasks = current_app.tasks
    if name not in tasks:
        # A process that has not imported the task modules yet (a management command, a shell)
        # imports them now, once.
        tasks_discover()
    return tasks[name]


def tasks_discover() -> None:
    """Import every installed app's ``tasks`` module and bind its tasks to the Celery app. A web
    process calls it at start-up (config/wsgi.py, config/asgi.py), so that a ring costs a cache call
    and a publish only.

    Not ``app.loader.import_default_modules()``, which Celery runs when a worker starts: it first sends
    ``import_modules``, on which Celery's Django fixup calls ``django.setup()`` again (configuring
    logging a second time) and runs every system check, about a second of work. A process that rings
    is set up already and needs the imports only."""
    current_app.autodiscover_tasks(force=True)
    current_app.finalize(auto=True)


def _log_outage(key: str, exc: Exception) -> None:
    _outage.missed += 1
    now = time.monotonic()
    logged_at = _outage.logged_at
    if logged_at is not None and now - logged_at < OUTAGE_LOG_EVERY:
        return
    logger.warning(
        "doorbell %s: Redis (cache or broker) unreachable, %s ring(s) missed in this process%s (%s: %s); "
        "the work waits in the database until a worker reconnects or the sweeper rings",
        key,
        _outage.missed,
        "" if logged_at is None else f" in the last {OUTAGE_LOG_EVERY:.0f} s",
        type(exc).__name__,
        exc,
    )
    _outage.missed, _outage.logged_at = 0, now


def rearm(key: str) -> float:
    """Re-arm the bell; returns when (``time.monotonic()``), for ``settled``."""
    cache.delete(key)
    return time.monotonic()


def settled(rearmed_at: float, debounce: float) -> float:
    """Seconds a drain that found no work must still wait before it may stop: rows committed by a
    process that skipped its ring may appear until ``debounce`` seconds after the re-arm."""
    return max(0.0, rearmed_at + debounce - time.monotonic())
