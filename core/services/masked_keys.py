"""The masked-number search keys (``core.models.MaskedPhoneKey``), kept in step with phones and names."""

from collections.abc import Iterable

from django.db import connection, transaction

from core.db import column_of, concrete_field
from core.models import BorrowerPhone, MaskedPhoneKey
from core.names import masked_phone_keys

_BATCH_SIZE = 900  # ids in one statement: under what SQLite takes


def masked_keys_rebuild(*, borrower_ids: Iterable[int]) -> int:
    """Replace the masked-number keys of every phone of ``borrower_ids`` with keys made from its
    number and its borrower's name as they are now; returns how many keys were written.

    ``BorrowerPhone.save`` and ``Borrower.save`` call it; a write that goes around them (a
    ``bulk_create``, an UPDATE of its own) must call it for the borrowers whose phones or names it
    added or changed (a phone that moved: its new borrower). One transaction."""
    ids = sorted(set(borrower_ids))
    written = 0
    with transaction.atomic():
        for start in range(0, len(ids), _BATCH_SIZE):
            phones = list(
                BorrowerPhone.objects.filter(borrower_id__in=ids[start : start + _BATCH_SIZE]).values_list(
                    "id", "borrower_id", "number", "borrower__full_name"
                )
            )
            # By the phones' ids, in the key table's own index: a join would read the whole table.
            for first in range(0, len(phones), _BATCH_SIZE):
                chunk = [phone_id for phone_id, *_ in phones[first : first + _BATCH_SIZE]]
                MaskedPhoneKey.objects.filter(phone_id__in=chunk).delete()
            rows = [
                (key, phone_id, borrower_id)
                for phone_id, borrower_id, number, full_name in phones
                for key in masked_phone_keys(number, full_name)
            ]
            _insert(rows)
            written += len(rows)
    return written


def _insert(rows: list[tuple[str, int, int]]) -> None:
    # Not bulk_create: an instance per key and the ORM's preparation of each value cost more than
    # the INSERT (most of what the keys added to a first import of a loan book), and a key is three
    # plain columns.
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(MaskedPhoneKey._meta.db_table)
    columns = ", ".join(
        quote(column_of(concrete_field(MaskedPhoneKey, name))) for name in ("key", "phone", "borrower")
    )
    # Only the table and column names of the model are interpolated; keys are parameters.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Three arrays, whatever the number of keys: nothing to parse per row.
            keys, phone_ids, borrower_ids = (list(column) for column in zip(*rows, strict=True))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) "  # noqa: S608
                "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[])",
                [keys, phone_ids, borrower_ids],
            )
        else:
            # SQLite runs executemany in-process: one prepared statement, no round trips.
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s)", rows)  # noqa: S608
