"""Reads of the lending core that more than one caller needs (API, M-Pesa matching, USSD, bots)."""

from django.db.models import Prefetch, prefetch_related_objects

from core.exceptions import NotFound
from core.models import Borrower, Loan, Repayment, User
from core.phones import normalize_phone


def loan_get_for_user(*, loan_number: str, user: User) -> Loan:
    """The loan numbered ``loan_number`` if ``user`` may see it, with its borrower, the borrower's
    phones and its repayments (newest first, each knowing whether it was reversed) loaded in a
    fixed number of queries.

    Raises ``NotFound`` both for a loan that does not exist and for one outside the user's
    portfolio, so the answer does not reveal which loan numbers exist.
    """
    # Postings only: a reversal shows as its posting's ``reversed`` flag, so summing the amounts a
    # client receives never counts money twice.
    repayments = (
        Repayment.objects.filter(kind=Repayment.Kind.POSTING)
        .select_related("reversal")
        .order_by("-posted_at", "-id")
    )
    loan = (
        Loan.objects.visible_to(user)
        .filter(loan_number=loan_number)
        .select_related("borrower")
        .prefetch_related("borrower__phones", Prefetch("repayments", queryset=repayments))
        .first()
    )
    if loan is None:
        raise NotFound(f"no loan numbered {loan_number}")
    return loan


def borrower_find_by_phone(*, phone: str, user: User | None = None) -> Borrower:
    """The borrower who owns ``phone`` (any common Kenyan form), with phones and loan officer loaded.

    ``user=None`` searches every borrower (M-Pesa matching, USSD); with a user, only the
    borrowers that user may see. Raises ``InvalidPhoneNumber`` for a number that is not a Kenyan
    mobile and ``NotFound`` when no (visible) borrower has it.
    """
    number = normalize_phone(phone)
    borrowers = Borrower.objects.all() if user is None else Borrower.objects.visible_to(user)
    borrower = (
        borrowers.filter(phones__number=number)
        .select_related("loan_officer")
        .prefetch_related("phones")
        .first()
    )
    if borrower is None:
        raise NotFound("no borrower has this phone number")
    return borrower


def borrower_get_for_user_by_phone(*, phone: str, user: User) -> Borrower:
    """Like ``borrower_find_by_phone`` scoped to ``user``, plus ``visible_loans``: the borrower's
    loans that ``user`` may see, ordered by due date. Raises ``InvalidPhoneNumber`` or ``NotFound``."""
    borrower = borrower_find_by_phone(phone=phone, user=user)
    loans = Loan.objects.visible_to(user).order_by("due_date", "id")
    prefetch_related_objects([borrower], Prefetch("loans", queryset=loans, to_attr="visible_loans"))
    return borrower


def staff_by_telegram_id(*, telegram_user_id: int | None) -> User | None:
    """The active staff member linked to this Telegram account, or ``None`` for anyone else."""
    if telegram_user_id is None:
        return None
    return User.objects.filter(telegram_user_id=telegram_user_id, is_active=True, is_staff=True).first()
