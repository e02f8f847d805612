"""Model metadata and statement helpers for the code that writes its own SQL (the loan import's bulk
UPDATE, the M-Pesa confirmation's one-statement INSERT)."""

import datetime
import functools
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

_UNDEFINED_PREPARED_STATEMENT = "26000"  # invalid_sql_statement_name
M = TypeVar("M", bound=models.Model)


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

# The field types a JSON row may hold (see row_json): Django's own, and subclasses that prepare
# their values as their Django base does (a money field with preset digits, say). Anything else (an
# encrypted text field prepares its values its own way) is refused when the plan is made.
_JSON_FIELDS = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.FloatField,
    models.ForeignKey,
    models.DecimalField,
    models.DateTimeField,
    models.BooleanField,
    models.GenericIPAddressField,
    models.JSONField,
)
_PREPARATION = ("pre_save", "get_prep_value", "get_db_prep_value", "get_db_prep_save", "to_python")


def _writable_from_json(field: models.Field) -> bool:
    kind = type(field)
    base = next((cls for cls in kind.__mro__ if cls.__module__.startswith("django.")), None)
    return (
        base is not None
        and issubclass(base, _JSON_FIELDS)
        and all(getattr(kind, name) is getattr(base, name) for name in _PREPARATION)
    )


@dataclass(frozen=True, slots=True)
class _RowPlan:
    columns: tuple[str, ...]
    column_of: dict[str, str]  # attribute name -> column
    constants: dict[str, Any]  # column -> default that is not a callable
    factories: tuple[tuple[str, Callable[[], Any]], ...]  # column -> callable default
    now: frozenset[str]  # auto_now / auto_now_add columns


@functools.cache
def _row_plan(model: type[models.Model], exclude: frozenset[str]) -> _RowPlan:
    fields = [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in exclude]
    refused = [f.name for f in fields if not _writable_from_json(f)]
    if refused:
        raise TypeError(f"{model.__name__} fields {refused} cannot be written from JSON")
    constants: dict[str, Any] = {}
    factories = []
    now = set()
    for field in fields:
        column = column_of(field)
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            now.add(column)
        elif field.has_default() and callable(field.default):
            factories.append((column, field.default))
        else:
            constants[column] = field.get_default()
    return _RowPlan(
        columns=tuple(column_of(f) for f in fields),
        column_of={f.attname: column_of(f) for f in fields},
        constants=constants,
        factories=tuple(factories),
        now=frozenset(now),
    )


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be stored as a number")
        return str(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the hot paths write aware datetimes only")
        return value.isoformat()
    if isinstance(value, datetime.date | uuid.UUID):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} from JSON")


def row_json(
    model: type[models.Model], values: Mapping[str, Any], *, exclude: Iterable[str] = ()
) -> tuple[tuple[str, ...], str]:
    """The columns an INSERT of one ``model`` row writes, and the row as one JSON object for
    ``jsonb_insert_sql`` (PostgreSQL), without building an instance.

    ``values`` maps attribute names (``config_id`` for a foreign key) to Python values; a field left
    out takes its default, and ``auto_now``/``auto_now_add`` fields the current time (as ``save()``,
    whatever ``values`` says). The server turns each value into its column's type with the type's own
    input function, in C: on a hot path, building an instance, the ORM's field-by-field preparation
    and the driver quoting thirty parameters cost more than the INSERT. Decimals and datetimes
    (aware only) are written as text. ``tests/core/test_db.py`` holds the rows it writes to the
    ORM's."""
    plan = _row_plan(model, frozenset(exclude))
    row = dict(plan.constants)
    for column, factory in plan.factories:
        row[column] = factory()
    if plan.now:
        now = timezone.now()
        for column in plan.now:
            row[column] = now
    for attname, value in values.items():
        try:
            column = plan.column_of[attname]
        except KeyError:
            raise TypeError(f"{model.__name__} has no field {attname!r} to write") from None
        if column not in plan.now:
            row[column] = value
    return plan.columns, json.dumps(row, default=_json_value)


def jsonb_insert_sql(model: type[models.Model], columns: Sequence[str], *, suffix: str = "") -> str:
    """``INSERT INTO <table> (<columns>) SELECT <columns> FROM jsonb_populate_record(...)`` with one
    ``%s`` parameter: the row as ``row_json`` gives it. ``suffix`` follows (``ON CONFLICT ...``,
    ``RETURNING ...``). Identifiers come from model metadata, quoted."""
    quote = connections["default"].ops.quote_name
    table = quote(model._meta.db_table)
    names = ", ".join(map(quote, columns))
    picked = ", ".join(f"r.{quote(column)}" for column in columns)
    return (
        f"INSERT INTO {table} ({names}) SELECT {picked} "  # noqa: S608 - identifiers from model metadata
        f"FROM jsonb_populate_record(NULL::{table}, %s::jsonb) AS r {suffix}"
    ).rstrip()


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


# --- hot-path UPDATEs ------------------------------------------------------------------------------


def save_fields(instance: models.Model, fields: Sequence[str]) -> None:
    """``instance.save(update_fields=fields)`` as one prepared ``UPDATE ... WHERE pk`` on PostgreSQL.

    For the rows every posted payment updates (the payment, its loan, its messages): the ORM compiles
    the same statement again each time, which cost more than running it. Values are prepared by their
    fields as ``save()`` prepares them (``auto_now`` fields take the current time); a model whose
    ``save()`` does more than write (``Borrower``'s keys, a digest) must not be saved this way. No
    signals are sent; none is connected to these models. Elsewhere it is ``save(update_fields=...)``."""
    model = type(instance)
    db = connections["default"]
    if db.vendor != "postgresql":
        instance.save(update_fields=list(fields))
        return
    meta = model._meta
    values = []
    columns = []
    for name in fields:
        field = concrete_field(model, name)
        value = field.pre_save(instance, False)  # the attribute, or now for auto_now
        values.append(field.get_db_prep_save(value, db))
        columns.append(column_of(field))
    sql = _update_sql(model, tuple(columns))
    with db.cursor() as cursor:
        execute_prepared(cursor, _statement_name("u", sql), sql, [*values, instance.pk])
        if cursor.rowcount != 1:
            raise ObjectDoesNotExist(f"{meta.label} {instance.pk} is not there to update")


@functools.cache
def _update_sql(model: type[models.Model], columns: tuple[str, ...]) -> str:
    quote = connections["default"].ops.quote_name
    assignments = ", ".join(f"{quote(column)} = %s" for column in columns)
    pk = quote(column_of(model._meta.pk))
    return f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {pk} = %s"  # noqa: S608 - metadata


@functools.cache
def _statement_name(kind: str, sql: str) -> str:
    return f"haven_{kind}_{hashlib.sha1(sql.encode(), usedforsecurity=False).hexdigest()[:16]}"


def create_row(model: type[M], **values: Any) -> M:
    """``model.objects.create(**values)`` as one prepared INSERT on PostgreSQL (``row_json``), for the
    rows every posted payment adds (its repayment, its audit event). Returns the instance with its
    primary key and the times the server stored. Elsewhere it is ``objects.create``."""
    db = connections["default"]
    if db.vendor != "postgresql":
        return model._default_manager.create(**values)
    instance = model(**values)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns, row = row_json(model, {f.attname: getattr(instance, f.attname) for f in fields})
    stamped = tuple(f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False))
    sql = _insert_returning_sql(model, columns, tuple(column_of(f) for f in stamped))
    with db.cursor() as cursor:
        execute_prepared(cursor, _statement_name("i", sql), sql, [row])
        returned = cursor.fetchone()
    instance.pk = returned[0]
    for field, value in zip(stamped, returned[1:], strict=True):
        setattr(instance, field.attname, value)
    instance._state.adding, instance._state.db = False, db.alias
    return instance


@functools.cache
def _insert_returning_sql(
    model: type[models.Model], columns: tuple[str, ...], stamped: tuple[str, ...]
) -> str:
    quote = connections["default"].ops.quote_name
    returning = ", ".join(quote(column) for column in (column_of(model._meta.pk), *stamped))
    return jsonb_insert_sql(model, columns, suffix=f"RETURNING {returning}")


def fetch_prepared(sql: str, params: Sequence) -> list[tuple]:
    """The rows of ``sql`` (``%s`` placeholders), run as a prepared statement named after its text:
    parsed and planned once per connection. PostgreSQL only (``execute_prepared``)."""
    with connections["default"].cursor() as cursor:
        execute_prepared(cursor, _statement_name("q", sql), sql, params)
        return cursor.fetchall()


# --- hot-path SELECTs of whole rows ----------------------------------------------------------------


def fetch_rows(sql: str, params: Sequence) -> list[tuple]:
    """The rows of ``sql`` (``%s`` placeholders): ``fetch_prepared`` on PostgreSQL, a plain query
    elsewhere. The SQL must be valid on both (``for_update`` for the one clause that is not)."""
    if connections["default"].vendor == "postgresql":
        return fetch_prepared(sql, params)
    with connections["default"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def execute_statement(sql: str, params: Sequence) -> int:
    """Run ``sql`` (``%s`` placeholders), prepared on PostgreSQL, plain elsewhere; returns the rows
    it changed."""
    with connections["default"].cursor() as cursor:
        if cursor.db.vendor == "postgresql":
            execute_prepared(cursor, _statement_name("x", sql), sql, params)
        else:
            cursor.execute(sql, params)
        return cursor.rowcount


def for_update(of: str, *, skip_locked: bool = False) -> str:
    """`` FOR UPDATE OF <of>`` (a table alias; `` SKIP LOCKED`` too when asked) where the database
    locks rows, ``""`` where it does not (SQLite, whose writers take the whole database), as
    ``select_for_update(of=..., skip_locked=...)`` does."""
    features = connections["default"].features
    if not features.has_select_for_update:
        return ""
    clause = f" FOR UPDATE OF {of}" if features.has_select_for_update_of else " FOR UPDATE"
    return f"{clause} SKIP LOCKED" if skip_locked and features.has_select_for_update_skip_locked else clause


class Columns:
    """The columns of ``model`` as a SELECT lists them under the table alias ``alias`` (all of them, all
    but ``exclude``, or ``only`` those), and model instances made of rows of them as the ORM makes them:
    each field's converters, then ``Model.from_db`` (fields left out are deferred and load on access).

    For the locking reads every posted payment makes (``payments.services.processing``): there the
    ORM's compiling of a query with a join, an annotation and deferred fields cost more than running it;
    a hand-written query listing ``Columns.sql`` runs prepared (``fetch_rows``). ``tests/core/test_db.py``
    holds the instances to the ORM's."""

    def __init__(
        self, model: type[M], alias: str, *, exclude: Iterable[str] = (), only: Iterable[str] | None = None
    ) -> None:
        names = {f.name for f in model._meta.concrete_fields}
        left_out = set(exclude) if only is None else names - set(only)
        unknown = (set(exclude) if only is None else set(only)) - names
        if unknown or model._meta.pk.name in left_out:
            raise TypeError(f"{model.__name__}: cannot leave out {sorted(unknown) or model._meta.pk.name}")
        # In the model's order: Model.from_db takes the values of a partial row in that order.
        self.fields = tuple(f for f in model._meta.concrete_fields if f.name not in left_out)
        self.model = model
        self.alias = alias
        self.width = len(self.fields)
        self._attnames = tuple(f.attname for f in self.fields)

    @functools.cached_property
    def sql(self) -> str:
        quote = connections["default"].ops.quote_name
        return ", ".join(f"{self.alias}.{quote(column_of(f))}" for f in self.fields)

    @functools.cached_property
    def _converters(self) -> tuple[tuple[int, Any, tuple[Callable, ...]], ...]:
        db = connections["default"]
        found = []
        for index, field in enumerate(self.fields):
            column = field.get_col(self.alias)
            converters = (*db.ops.get_db_converters(column), *field.get_db_converters(db))
            if converters:
                found.append((index, column, converters))
        return tuple(found)

    def instance(self, row: Sequence, start: int = 0) -> Any:
        """The instance of the ``width`` values of ``row`` from ``start``."""
        values = list(row[start : start + self.width])
        db = connections["default"]
        for index, column, converters in self._converters:
            value = values[index]
            for converter in converters:
                value = converter(value, column, db)
            values[index] = value
        return self.model.from_db(db.alias, self._attnames, values)
