from decimal import Decimal

from django.db import models

from core.actors import Actor
from core.models import AuditEvent, Borrower, Loan


def audit_record(
    *,
    action: str,
    actor: Actor,
    reason: str = "",
    borrower: Borrower | None = None,
    loan: Loan | None = None,
    obj: models.Model | None = None,
    amount: Decimal | None = None,
    data: dict | None = None,
) -> AuditEvent:
    """Write one audit event: who (``actor``), what (``action``, ``obj``, ``amount``, ``data``), why.

    Call it inside the transaction that makes the change, so the change and its record commit
    together or not at all.
    """
    borrower_id = borrower.pk if borrower is not None else (loan.borrower_id if loan is not None else None)
    return AuditEvent.objects.create(
        actor_type=actor.kind,
        actor_user=actor.user,
        actor_label=actor.label,
        action=action,
        borrower_id=borrower_id,
        loan=loan,
        # model_name is None only on an Options not yet attached to a model class.
        object_type=(obj._meta.model_name or "") if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        amount=amount,
        reason=reason,
        data=data or {},
    )
