"""What the callback endpoints answer Daraja: an HTTP status and a JSON body.

A module of its own, importing nothing, so that ``payments.metrics`` (which labels each answer's
outcome) can name the type without importing the callbacks service, which imports processing, which
imports the metrics."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    status: int
    body: dict
