"""Work queues kept in the database: the rows are the work, Celery only carries "there is work".

A queue (``WorkQueue``) is a model with ``status``, ``attempts`` and ``next_attempt_at``, and the
status of its rows that wait to be worked. Payments to post (``payments.services.processing``) and
messages to send (``core.services.outbox``) are such queues; both are drained the same way:

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

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from celery import Task
from django.db import connections, models, transaction
from django.utils import timezone

from core import doorbell
from core.db import Columns, column_of, concrete_field, execute_statement, fetch_rows, for_update
from core.retry import RetryPolicy

Row = TypeVar("Row", bound=models.Model)

# Items one drain task works before handing over to a fresh task (keeps tasks short).
DRAIN_BATCH = 200


@dataclass(frozen=True)
class WorkQueue(Generic[Row]):
    """A model whose rows are work: a row is due when its ``status`` is ``ready`` and its
    ``next_attempt_at`` has come (the model has ``attempts`` too). A claim reads every column of
    the rows it takes but ``unread`` (read on access, should anything ask).

    The model needs an index on (status, next_attempt_at, pk), the order of a claim, and no other
    index that leads with status: a claim walks it in order (see ``_walk_indexes``)."""

    model: type[Row]
    ready: str
    unread: tuple[str, ...] = ()

    def due(self) -> "models.QuerySet[Row]":
        """The due rows, as a queryset (sweepers, counts)."""
        return self.model._default_manager.filter(status=self.ready, next_attempt_at__lte=timezone.now())

    @functools.cached_property
    def columns(self) -> Columns:
        return Columns(self.model, "q", exclude=self.unread)


@functools.cache
def _claim_sql(queue: WorkQueue, by_pk: bool) -> str:
    # Written out and run prepared (core.db.fetch_rows): the ORM compiled the claim and the lease
    # again for every batch, at more CPU than running them.
    quote = connections["default"].ops.quote_name
    pk = quote(column_of(queue.model._meta.pk))
    only = f" AND q.{pk} = %s" if by_pk else ""
    return (
        f"SELECT {queue.columns.sql} FROM {quote(queue.model._meta.db_table)} q "  # noqa: S608 - metadata
        f"WHERE q.status = %s AND q.next_attempt_at <= %s{only} "
        f"ORDER BY q.next_attempt_at, q.{pk} LIMIT %s{for_update('q', skip_locked=True)}"
    )


@functools.cache
def _lease_sql(model: type[models.Model], marks: tuple[str, ...], count: int) -> str:
    quote = connections["default"].ops.quote_name
    marked = "".join(f", {quote(column_of(concrete_field(model, name)))} = %s" for name in marks)
    return (
        f"UPDATE {quote(model._meta.db_table)} SET attempts = attempts + 1, "  # noqa: S608 - metadata
        f"next_attempt_at = %s{marked} "
        f"WHERE {quote(column_of(model._meta.pk))} IN ({', '.join(['%s'] * count)})"
    )


def _prepared(model: type[models.Model], name: str, value: Any) -> Any:
    """``value`` as the database takes it for the field ``name``, as the ORM prepares it (SQLite
    compares datetimes as text in Django's own format)."""
    return concrete_field(model, name).get_db_prep_value(value, connections["default"])


@contextlib.contextmanager
def _walk_indexes() -> Iterator[None]:
    """Plan the claim (its SELECT and its lease UPDATE) on PostgreSQL with sorts and sequential
    scans priced out, and put the settings back after it.

    A burst of rows outruns the table's statistics (autovacuum analyses it a minute later at the
    soonest), and prepared statements keep the plan they were given while the table was small:
    the planner then believes a handful of rows are due, or that the table is a few pages. With
    10,000 payments waiting the claim read all of them and sorted them (950 pages, 12-19 ms for
    each claim of ten), and the lease UPDATE of ten rows by id scanned the whole table (1,000-1,500
    pages, 2-5 ms each time, for the payments and the outbox alike): a backlog drained slower the
    longer it was. With both priced out the claim walks the index (status, next_attempt_at, pk),
    which is in claim order, and stops after the rows it takes; the lease finds its rows by the
    primary key."""
    connection = connections["default"]
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off")
    yield
    # A claim made inside a caller's transaction leaves the caller's queries as they were (an error
    # instead rolls the claim's transaction or savepoint back, and the settings with it).
    with connection.cursor() as cursor:
        cursor.execute("RESET enable_sort; RESET enable_seqscan")


def claim_batch(
    queue: WorkQueue[Row],
    *,
    lease: timedelta,
    limit: int,
    pk: Any = None,
    retry: RetryPolicy | None = None,
    give_up: Callable[[Row], None] | None = None,
    **marks: Any,
) -> list[Row]:
    """Claim up to ``limit`` of the oldest due rows of ``queue`` (by ``next_attempt_at``, then id;
    only the row ``pk`` when given) that no other worker holds, in one transaction committed at once;
    returns them in that order.

    Each claimed row has an attempt counted, ``next_attempt_at`` set to ``lease`` from now (the row is
    the claimer's until then) and ``marks`` set (e.g. a status): one UPDATE for all of them. With
    ``retry``, a row that has used all its attempts is not claimed but handed to ``give_up`` (in the
    same transaction) and returned as it is then; the caller tells them apart by their attempts.
    Claiming a few rows at once saves a transaction per row; the last of them waits for the ones
    before it, so ``limit`` times the time one takes must stay well inside ``lease``."""
    model = queue.model
    params = [_prepared(model, "status", queue.ready), _prepared(model, "next_attempt_at", timezone.now())]
    params += [_prepared(model, model._meta.pk.name, pk)] if pk is not None else []
    with transaction.atomic(), _walk_indexes():
        rows: list[Row] = [
            queue.columns.instance(row)
            for row in fetch_rows(_claim_sql(queue, pk is not None), [*params, limit])
        ]
        claimed = []
        for row in rows:
            if retry is not None and give_up is not None and retry.exhausted(row.attempts):  # type: ignore[attr-defined]
                give_up(row)
            else:
                claimed.append(row)
        if claimed:
            until = timezone.now() + lease
            execute_statement(
                _lease_sql(model, tuple(marks), len(claimed)),
                [
                    _prepared(model, "next_attempt_at", until),
                    *(_prepared(model, name, value) for name, value in marks.items()),
                    *(row.pk for row in claimed),
                ],
            )
            for row in claimed:
                row.attempts += 1  # type: ignore[attr-defined]
                row.next_attempt_at = until  # type: ignore[attr-defined]
                for name, value in marks.items():
                    setattr(row, name, value)
    return rows


def claim_next(
    queue: WorkQueue[Row],
    *,
    lease: timedelta,
    retry: RetryPolicy | None = None,
    give_up: Callable[[Row], None] | None = None,
    **marks: Any,
) -> Row | None:
    """Claim the oldest due row of ``queue`` that no other worker holds (``claim_batch`` of one);
    ``None`` when nothing is due."""
    rows = claim_batch(queue, lease=lease, limit=1, retry=retry, give_up=give_up, **marks)
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
