"""Django admin for the lending core.

Money is read-only here. Loans and borrowers are added through their services; every correction
is an admin action that asks for what it needs and a reason on an intermediate page, then calls a
service with the member of staff as the actor, so it lands in the audit trail. Officers see only
their own portfolio. Phone numbers are masked in lists.

Django's admin autodiscovery imports this package; importing the modules below registers every model.
"""

from core.admin.actions import ACTION_TEMPLATE
from core.admin.borrowers import BorrowerAdmin, BorrowerPhoneInline, LoanInline
from core.admin.ledger import AuditEventAdmin, CreditEntryAdmin
from core.admin.loans import DueFilter, LoanAdmin, RepaymentAdmin, RepaymentInline
from core.admin.mixins import (
    PhoneSearchMixin,
    PortfolioScopedMixin,
    ReadOnlyAdminMixin,
    ServiceErrorsAsMessagesMixin,
)
from core.admin.ops import OpsIncidentAdmin
from core.admin.staff import ApiTokenAdmin, StaffUserAdmin

__all__ = [
    "ACTION_TEMPLATE",
    "ApiTokenAdmin",
    "AuditEventAdmin",
    "BorrowerAdmin",
    "BorrowerPhoneInline",
    "CreditEntryAdmin",
    "DueFilter",
    "LoanAdmin",
    "LoanInline",
    "OpsIncidentAdmin",
    "PhoneSearchMixin",
    "PortfolioScopedMixin",
    "ReadOnlyAdminMixin",
    "RepaymentAdmin",
    "RepaymentInline",
    "ServiceErrorsAsMessagesMixin",
    "StaffUserAdmin",
]
