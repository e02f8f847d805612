"""Shapes of the borrower channels' REST API: the SMS log (numbers leave masked)."""

import datetime as dt
from enum import StrEnum

from ninja import Field, Schema

from core.phones import mask_phone


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class MessageFiltersIn(Schema):
    phone: str | None = Field(None, description="any Kenyan form: 0712345678, +254 712 345 678, 254712345678")
    direction: Direction | None = None


class MessageOut(Schema):
    """One SMS: ``in`` from a phone, or ``out`` to one (its delivery report's status when there is
    one, else the outbox's)."""

    direction: Direction
    phone: str = Field(description="masked")
    text: str
    status: str
    time: dt.datetime

    # Rows come from ussd.api.messages_for, whose column names cannot be the models' own.
    @staticmethod
    def resolve_phone(row: dict) -> str:
        return mask_phone(row["number"])

    @staticmethod
    def resolve_text(row: dict) -> str:
        return row["text_value"]

    @staticmethod
    def resolve_status(row: dict) -> str:
        return row["state"]
