"""Every write of the M-Pesa engine. Import services from here."""

from payments.services.actions import (
    assignable_loan,
    transaction_assign,
    transaction_mark_reviewed,
    transaction_reprocess,
    transaction_reverse,
)
from payments.services.callbacks import InboundRequest, callback_receive
from payments.services.processing import (
    TransientProcessingError,
    transaction_process,
    transaction_process_batch,
    transaction_process_next,
)

__all__ = [
    "InboundRequest",
    "TransientProcessingError",
    "assignable_loan",
    "callback_receive",
    "transaction_assign",
    "transaction_mark_reviewed",
    "transaction_process",
    "transaction_process_batch",
    "transaction_process_next",
    "transaction_reprocess",
    "transaction_reverse",
]
