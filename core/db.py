"""Model metadata and statement helpers for the code that writes its own SQL (the loan import's bulk
UPDATE, the M-Pesa callback's one-statement INSERT)."""

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

_UNDEFINED_PREPARED_STATEMENT = "26000"  # invalid_sql_statement_name


def concrete_field(model: type[models.Model], name: str) -> models.Field:
    """The field ``name`` of ``model``, which must have a column of its own. Raises ``TypeError``
    for the reverse side of a relation or another field without a column."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or field.column is None:
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return field


def column_of(field: models.Field) -> str:
    """The column of a concrete field. Raises ``TypeError`` for a field without one (only a field
    that is not concrete, such as a ``ForeignObject``, has none)."""
    if field.column is None:
        raise TypeError(f"{field} has no column")
    return field.column


# --- hot-path INSERTs ------------------------------------------------------------------------------

_MISSING = object()
# Fields whose preparation leaves a ``str`` (text) or an ``int`` (integers, foreign keys) as it is.
# Exact types: a subclass (an encrypted text field, say) may prepare its values in its own way.
_TEXT_FIELDS = frozenset({models.CharField, models.TextField})
_INTEGER_FIELDS = frozenset(
    {
        models.IntegerField,
        models.PositiveIntegerField,
        models.BigIntegerField,
        models.SmallIntegerField,
        models.ForeignKey,
    }
)

# How insert_params treats each field: _NOW fields take the time (auto_now, auto_now_add); _TEXT
# and _INTEGER fields pass a str / an int untouched; every field but a JSONField (where None is JSON
# null) passes None untouched; everything else goes through get_db_prep_save.
_NOW, _TEXT, _INTEGER, _OTHER = range(4)


@functools.cache
def _insert_plan(
    model: type[models.Model], exclude: frozenset[str]
) -> tuple[tuple[str, ...], tuple[tuple[str, models.Field, int, bool], ...]]:
    fields = [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in exclude]
    plan = []
    for field in fields:
        kind = type(field)
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            mode = _NOW
        elif kind in _TEXT_FIELDS:
            mode = _TEXT
        elif kind in _INTEGER_FIELDS:
            mode = _INTEGER
        else:
            mode = _OTHER
        plan.append((field.attname, field, mode, kind is not models.JSONField))
    return tuple(column_of(f) for f in fields), tuple(plan)


def insert_params(
    model: type[models.Model],
    values: Mapping[str, Any],
    *,
    exclude: Iterable[str] = (),
    using: str = "default",
) -> tuple[tuple[str, ...], list]:
    """The columns an INSERT of one ``model`` row writes and their values, prepared as ``save()``
    would prepare them, without building an instance.

    ``values`` maps attribute names (``config_id`` for a foreign key) to Python values; a field left
    out takes its default, and ``auto_now``/``auto_now_add`` fields the current time (as ``save()``,
    whatever ``values`` says). For hot paths only: there, an instance and the ORM's field-by-field
    preparation cost more than the INSERT. ``tests/core/test_db.py`` holds it to what the ORM writes."""
    columns, plan = _insert_plan(model, frozenset(exclude))
    db = connections[using]
    now = None
    params = []
    for attname, field, mode, none_is_null in plan:
        if mode == _NOW:
            value = now = now or timezone.now()
        else:
            value = values.get(attname, _MISSING)
            if value is _MISSING:
                value = field.get_default()
        if (
            (value is None and none_is_null)
            or (mode == _TEXT and isinstance(value, str))
            or (mode == _INTEGER and type(value) is int)
        ):
            params.append(value)
        else:
            params.append(field.get_db_prep_save(value, db))
    return columns, params


def _prepared_on(db: BaseDatabaseWrapper) -> set[str]:
    """The statements PREPAREd on ``db``'s current connection (PostgreSQL keeps them for the session,
    whatever happens to transactions). Kept on the wrapper with the driver connection they belong
    to, so a reconnect starts afresh; holding that connection means it cannot be mistaken for a new
    one. (A WeakKeyDictionary did the same at the cost of a weak reference per call.)"""
    state = db.__dict__.get("_haven_prepared")
    if state is None or state[0] is not db.connection:
        state = db.__dict__["_haven_prepared"] = (db.connection, set())
    return state[1]


def execute_prepared(cursor: CursorWrapper, name: str, sql: str, params: Sequence) -> None:
    """Run ``sql`` (``%s`` placeholders) as the server-side prepared statement ``name``: parsed and
    planned once per connection instead of on every call. PostgreSQL only; behind a pooler in
    transaction mode (which moves sessions between clients) set DB_PREPARED_STATEMENTS=false."""
    if not settings.DB_PREPARED_STATEMENTS:
        cursor.execute(sql, params)
        return
    known = _prepared_on(cursor.db)
    if name not in known:
        placeholders = tuple(f"${n}" for n in range(1, len(params) + 1))
        cursor.execute(f"PREPARE {name} AS {sql % placeholders}")
        known.add(name)
    execute = f"EXECUTE {name} ({', '.join(['%s'] * len(params))})"
    try:
        cursor.execute(execute, params)
    except DatabaseError as exc:
        if getattr(exc.__cause__, "pgcode", None) != _UNDEFINED_PREPARED_STATEMENT:
            raise
        # Deallocated behind our back (DISCARD ALL, a pooler): forget it; prepare again and retry
        # when that is possible (outside a transaction, which the error has just aborted).
        known.discard(name)
        if cursor.db.in_atomic_block:
            raise
        execute_prepared(cursor, name, sql, params)
