"""Django admin for M-Pesa: configurations (with the Daraja calls), payments and their corrections,
raw callbacks, and the outbox the engine fills (core's ``OutboxMessage`` is registered here).

Money and payloads are read-only; every correction is an admin action that calls a service with the
member of staff as the actor, so it lands in the audit trail.
"""

from payments.admin import callbacks, configuration, outbox, status, transactions

__all__ = ["callbacks", "configuration", "outbox", "status", "transactions"]
