"""Who did something: a staff user, a borrower (by phone) or the system itself. Every service that
changes money or an allocation takes an ``actor`` and writes it to the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.models import User


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str  # one of core.models.AuditEvent.ActorType
    user: User | None = None
    label: str = ""

    @classmethod
    def staff(cls, user: User) -> Actor:
        return cls(kind="staff", user=user, label=user.get_username())

    @classmethod
    def borrower(cls, phone_e164: str) -> Actor:
        return cls(kind="borrower", label=phone_e164)

    @classmethod
    def system(cls, component: str) -> Actor:
        return cls(kind="system", label=component)

    def __str__(self) -> str:
        return f"{self.kind}:{self.label}"
