"""Model metadata for the code that writes its own SQL (the loan import's bulk UPDATE, the M-Pesa
callback's one-statement INSERT)."""

from django.db import models


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
