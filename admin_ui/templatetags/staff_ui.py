"""Template filters of the staff pages: money, rates, durations, and phone masking for display."""

from decimal import Decimal

from django import template

from core.logfilters import mask_phone_numbers
from core.models import AuditEvent
from core.money import format_money
from core.phones import mask_phone

register = template.Library()


@register.filter
def money(amount: Decimal | None) -> str:
    """``Decimal("1250.5")`` -> ``"1,250.50"``; an em dash for no amount."""
    return "—" if amount is None else format_money(amount)


@register.filter
def percent(rate: float | None) -> str:
    """A 0..1 rate as ``"97.5%"``; an em dash when there is no rate (nothing settled yet)."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


@register.filter
def duration_ms(milliseconds: float | None) -> str:
    if milliseconds is None:
        return "—"
    if milliseconds < 9.95:  # what rounds to 10.0 is shown as 10 ms
        return f"{milliseconds:.1f} ms"
    return f"{milliseconds:.0f} ms" if milliseconds < 1000 else f"{milliseconds / 1000:.1f} s"


@register.filter
def masked(text: str | None) -> str:
    """Any Kenyan phone number inside ``text`` masked (a payer may type one as the account)."""
    return mask_phone_numbers(str(text or ""))


@register.filter
def actor(event: AuditEvent) -> str:
    """Who did it: a borrower is recorded by phone number, which staff pages show masked."""
    if event.actor_type == AuditEvent.ActorType.BORROWER:
        return f"borrower {mask_phone(event.actor_label)}"
    return f"{event.get_actor_type_display().lower()} {event.actor_label}".strip()
