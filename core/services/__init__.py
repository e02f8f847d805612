"""Every write to the lending core. Import services from here."""

from core.services.audit import audit_record
from core.services.borrowers import (
    borrower_create,
    borrower_credit_apply_to_loan,
    borrower_phone_add,
    borrower_update,
    repayment_receive,
)
from core.services.credit import borrower_credit_add, borrower_credit_use
from core.services.imports import ImportResult, loan_import_csv
from core.services.loans import (
    PostingResult,
    loan_create,
    loan_next_number,
    loan_number_counter_raise_to,
    loan_update,
    loan_write_off,
    repayment_apply,
    repayment_post,
    repayment_reverse,
)
from core.services.masked_keys import masked_keys_rebuild
from core.services.staff import user_telegram_code_create, user_telegram_link, user_telegram_mark_unreachable
from core.services.tokens import api_token_authenticate, api_token_create, api_token_revoke

__all__ = [
    "ImportResult",
    "PostingResult",
    "api_token_authenticate",
    "api_token_create",
    "api_token_revoke",
    "audit_record",
    "borrower_create",
    "borrower_credit_add",
    "borrower_credit_apply_to_loan",
    "borrower_credit_use",
    "borrower_phone_add",
    "borrower_update",
    "loan_create",
    "loan_import_csv",
    "loan_next_number",
    "loan_number_counter_raise_to",
    "loan_update",
    "loan_write_off",
    "masked_keys_rebuild",
    "repayment_apply",
    "repayment_post",
    "repayment_receive",
    "repayment_reverse",
    "user_telegram_code_create",
    "user_telegram_link",
    "user_telegram_mark_unreachable",
]
