from decimal import Decimal
from typing import TypeVar

from django.db import models, transaction

from core.actors import Actor
from core.db import create_row
from core.models import AuditEvent, Borrower, Loan

M = TypeVar("M", bound=models.Model)


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
    return create_row(
        AuditEvent,
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


def audited_update(obj: M, *, changes: dict[str, object], action: str, actor: Actor, reason: str = "") -> M:
    """Set the fields in ``changes`` on ``obj``'s row, under its lock, and audit one ``action`` event
    with the before and after of each field that changed (linked to the borrower or loan it is about).
    Returns the row as saved; nothing is saved or audited when no value differs.

    The callers check which fields may change; an ``IntegrityError`` (a unique value taken) leaves
    this function's atomic block rolled back, for the caller to turn into its own error."""
    with transaction.atomic():
        locked = type(obj)._default_manager.select_for_update().get(pk=obj.pk)
        diff = {}
        for name, value in changes.items():
            before = getattr(locked, name)
            if before != value:
                diff[name] = {"before": _audit_value(before), "after": _audit_value(value)}
                setattr(locked, name, value)
        if diff:
            locked.save(update_fields=[*changes, "updated_at"])
            audit_record(
                action=action,
                actor=actor,
                borrower=locked if isinstance(locked, Borrower) else None,
                loan=locked if isinstance(locked, Loan) else None,
                obj=locked,
                reason=reason,
                data=diff,
            )
    return locked


def _audit_value(value: object) -> object:
    # JSON for the audit's data: a related row as its name, a date or time in ISO 8601.
    if isinstance(value, models.Model):
        return str(value)
    return value.isoformat() if hasattr(value, "isoformat") else value
