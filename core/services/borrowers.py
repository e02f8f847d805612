"""Borrowers, their phone numbers and their credit balance."""

from decimal import Decimal

from django.db import IntegrityError, transaction

from core.actors import Actor
from core.exceptions import InvalidInput, InvalidState
from core.models import Borrower, BorrowerPhone, CreditEntry, Language, Loan, User
from core.money import to_money
from core.phones import mask_phone, normalize_phone
from core.services.audit import audit_record, audited_update
from core.services.credit import borrower_credit_add, borrower_credit_use
from core.services.loans import CREDIT_SOURCE, PostingResult, repayment_post


def borrower_create(
    *,
    full_name: str,
    phones: list[str],
    actor: Actor,
    national_id: str | None = None,
    preferred_language: str = Language.ENGLISH,
    loan_officer: User | None = None,
) -> Borrower:
    """Create a borrower with one or more phone numbers (the first is primary).

    Numbers are normalised to E.164. Raises ``InvalidPhoneNumber`` for a number that is not a
    Kenyan mobile and ``InvalidInput`` for a number or national ID that belongs to someone else.
    """
    full_name = (full_name or "").strip()
    if not full_name:
        raise InvalidInput("a borrower needs a name")
    if not phones:
        raise InvalidInput("a borrower needs at least one phone number")
    numbers = list(dict.fromkeys(normalize_phone(raw) for raw in phones))
    national_id = (national_id or "").strip() or None
    if preferred_language not in Language.values:
        raise InvalidInput(f"language must be one of {', '.join(Language.values)}")
    try:
        with transaction.atomic():
            borrower = Borrower.objects.create(
                full_name=full_name,
                national_id=national_id,
                preferred_language=preferred_language,
                loan_officer=loan_officer,
            )
            for position, number in enumerate(numbers):
                BorrowerPhone.objects.create(borrower=borrower, number=number, is_primary=position == 0)
            audit_record(
                action="borrower.created",
                actor=actor,
                borrower=borrower,
                obj=borrower,
                data={"phones": [mask_phone(n) for n in numbers]},
            )
    except IntegrityError:
        taken = BorrowerPhone.objects.filter(number__in=numbers).values_list("number", flat=True)
        if taken:
            raise InvalidInput(
                "phone number already belongs to another borrower: " + ", ".join(mask_phone(n) for n in taken)
            ) from None
        raise InvalidInput("national ID already belongs to another borrower") from None
    return borrower


def borrower_phone_add(
    *, borrower: Borrower, number: str, actor: Actor, make_primary: bool = False
) -> BorrowerPhone:
    """Add a phone number to a borrower, optionally making it the primary one (which receives SMS).

    Raises ``InvalidPhoneNumber`` or ``InvalidInput`` (number already in use).
    """
    e164 = normalize_phone(number)
    try:
        with transaction.atomic():
            Borrower.objects.select_for_update().get(pk=borrower.pk)
            has_primary = borrower.phones.filter(is_primary=True).exists()
            if make_primary and has_primary:
                borrower.phones.filter(is_primary=True).update(is_primary=False)
            phone = BorrowerPhone.objects.create(
                borrower=borrower, number=e164, is_primary=make_primary or not has_primary
            )
            audit_record(
                action="borrower.phone_added",
                actor=actor,
                borrower=borrower,
                obj=phone,
                data={"phone": mask_phone(e164), "primary": phone.is_primary},
            )
    except IntegrityError:
        raise InvalidInput(f"{mask_phone(e164)} already belongs to a borrower") from None
    return phone


def borrower_credit_apply_to_loan(*, loan: Loan, amount: Decimal, actor: Actor, reason: str) -> PostingResult:
    """Pay ``loan`` from its borrower's credit balance, in one transaction.

    Takes no more than the loan's outstanding. Raises ``InvalidState`` when the credit is short or
    the loan is not active.
    """
    amount = to_money(amount)
    with transaction.atomic():
        borrower = Borrower.objects.select_for_update().get(pk=loan.borrower_id)
        locked = Loan.objects.select_for_update().get(pk=loan.pk)
        amount = min(amount, locked.outstanding)
        if amount <= 0:
            raise InvalidState(f"{locked.loan_number} has nothing outstanding")
        reference = f"CREDIT-{borrower.pk}"
        borrower_credit_use(
            borrower=borrower, amount=amount, actor=actor, reference=locked.loan_number, reason=reason
        )
        return repayment_post(
            loan=locked, amount=amount, actor=actor, source=CREDIT_SOURCE, reference=reference, reason=reason
        )


def repayment_receive(
    *, loan: Loan, amount: Decimal, actor: Actor, source: str, reference: str = "", reason: str = ""
) -> tuple[PostingResult, CreditEntry | None]:
    """Post money received for ``loan``; what the loan cannot take goes to its borrower's credit.

    One transaction, borrower locked before the loan (the project's lock order). Returns the
    posting result and the credit entry (``None`` when there was no excess). Raises what
    ``repayment_post`` raises.
    """
    with transaction.atomic():
        borrower = Borrower.objects.select_for_update().get(pk=loan.borrower_id)
        result = repayment_post(
            loan=loan, amount=amount, actor=actor, source=source, reference=reference, reason=reason
        )
        entry = None
        if result.excess > 0:
            entry = borrower_credit_add(
                borrower=borrower,
                amount=result.excess,
                actor=actor,
                reference=reference or result.loan.loan_number,
                reason=reason or f"excess over {result.loan.loan_number}",
            )
    return result, entry


BORROWER_EDITABLE_FIELDS = ("full_name", "national_id", "preferred_language", "loan_officer")


def borrower_update(
    *, borrower: Borrower, changes: dict[str, object], actor: Actor, reason: str = ""
) -> Borrower:
    """Change a borrower's name, national ID, language or officer and audit each change with before
    and after (moving a borrower to another officer moves their loans' follow-up). Returns the
    borrower. Raises ``InvalidInput`` for another field or a national ID that belongs to someone else."""
    refused = set(changes) - set(BORROWER_EDITABLE_FIELDS)
    if refused:
        raise InvalidInput(f"{', '.join(sorted(refused))} cannot be edited here")
    if "national_id" in changes:
        national_id = changes["national_id"]
        if national_id is not None and not isinstance(national_id, str):
            raise InvalidInput("national_id must be text")
        changes = {**changes, "national_id": (national_id or "").strip() or None}
    try:
        return audited_update(
            borrower, changes=changes, action="borrower.updated", actor=actor, reason=reason
        )
    except IntegrityError:
        raise InvalidInput("national ID already belongs to another borrower") from None
