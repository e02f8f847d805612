"""``manage.py seed_demo``: demo staff, borrowers, loans and an API token for a local run.

Idempotent: borrowers are found by national ID and loans by their fixed numbers, so a second run
creates and changes nothing, except the API token. Tokens are stored hashed and cannot be shown
again, so every run revokes the previous "demo" token and prints a fresh one.
"""

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import services
from core.actors import Actor
from core.exceptions import HavenError
from core.models import Borrower, Loan, User
from core.services.loans import LOAN_NUMBER_PATTERN
from core.services.tokens import TOKEN_PREFIX, api_token_authenticate

OFFICER_GROUP = "Loan officers"
# (app label, codename): the lending core, and the payments an officer works on in the admin.
OFFICER_PERMISSIONS = (
    ("core", "view_borrower"),
    ("core", "change_borrower"),
    ("core", "view_loan"),
    ("core", "change_loan"),
    ("core", "view_repayment"),
    ("core", "view_creditentry"),
    ("core", "view_auditevent"),
    ("payments", "view_mpesatransaction"),
    ("payments", "change_mpesatransaction"),
)
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"  # noqa: S105 - a demo login, refused unless DEBUG is on
OFFICER_PASSWORD = "demo-pass-2025"  # noqa: S105 - a demo login, refused unless DEBUG is on
OFFICERS = (("officer.wanjiru", "Wanjiru", "Kamau"), ("officer.otieno", "Brian", "Otieno"))
TOKEN_NAME = "demo"  # noqa: S105 - the token's label, not a secret
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class DemoBorrower:
    full_name: str
    phones: tuple[str, ...]
    national_id: str
    language: str
    officer: str
    credit: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class DemoLoan:
    loan_number: str
    national_id: str
    principal: Decimal
    interest: Decimal
    disbursed_days_ago: int
    due_in_days: int  # negative: overdue
    fees: Decimal = Decimal("0.00")
    penalties: Decimal = Decimal("0.00")
    # (amount, reference, days after disbursement); "full" pays the loan off.
    repayments: tuple[tuple[str, str, int], ...] = field(default=())


WANJIRU, OTIENO = OFFICERS[0][0], OFFICERS[1][0]

BORROWERS = (
    DemoBorrower("Achieng Odhiambo", ("0712345678",), "23456781", "en", WANJIRU),
    DemoBorrower("Peter Kamau Njoroge", ("0722481530", "0110482317"), "24567812", "sw", WANJIRU),
    DemoBorrower("Grace Wanjiku Mwangi", ("0733190462",), "25678123", "en", WANJIRU),
    DemoBorrower("Joseph Otieno Ouma", ("0701556208",), "26781234", "sw", OTIENO),
    DemoBorrower("Mwanajuma Hassan", ("0115903264",), "27812345", "sw", OTIENO, credit=Decimal("350.00")),
    DemoBorrower("Kiprop Kipchumba", ("0741200913",), "28123456", "en", OTIENO),
    DemoBorrower("Nyambura Kariuki", ("0768334721",), "29234567", "sw", WANJIRU),
    DemoBorrower("Baraka Mutua", ("0795618240",), "30345678", "en", OTIENO),
    DemoBorrower("Amina Abdi Farah", ("0102774519",), "31456789", "sw", WANJIRU),
    DemoBorrower("Faith Chebet", ("0729013856",), "32567890", "en", OTIENO),
    DemoBorrower("Daniel Mutiso Musyoka", ("0757492031",), "33678901", "sw", WANJIRU),
    DemoBorrower("Esther Akinyi Wambui", ("0113650728",), "34789012", "en", OTIENO),
)

D = Decimal
LOANS = (
    DemoLoan("LOAN-000101", "23456781", D("10000.00"), D("1500.00"), 10, 20, fees=D("200.00")),
    # Paid in full: its repayment history exists.
    DemoLoan(
        "LOAN-000102", "24567812", D("5000.00"), D("750.00"), 60, -30, repayments=(("full", "CASH-0102", 25),)
    ),
    # The same borrower's second loan.
    DemoLoan("LOAN-000103", "24567812", D("8000.00"), D("1200.00"), 5, 25),
    # Overdue, with fees and penalties, partly repaid (the first KES 1,000 cleared the penalties first).
    DemoLoan(
        "LOAN-000104",
        "25678123",
        D("15000.00"),
        D("2250.00"),
        40,
        -10,
        fees=D("500.00"),
        penalties=D("750.00"),
        repayments=(("1000.00", "CASH-0104", 35),),
    ),
    # Overdue, nothing paid.
    DemoLoan("LOAN-000105", "26781234", D("3000.00"), D("450.00"), 51, -21),
    DemoLoan("LOAN-000106", "27812345", D("7000.00"), D("1050.00"), 15, 15),
    # Kiprop: an old loan paid off and a new one running.
    DemoLoan(
        "LOAN-000107", "28123456", D("2000.00"), D("300.00"), 90, -60, repayments=(("full", "CASH-0107", 28),)
    ),
    DemoLoan("LOAN-000108", "28123456", D("4000.00"), D("600.00"), 7, 7),
    DemoLoan("LOAN-000109", "29234567", D("12000.00"), D("1800.00"), 2, 28, fees=D("300.00")),
    DemoLoan("LOAN-000110", "30345678", D("6000.00"), D("900.00"), 27, 3),
    DemoLoan(
        "LOAN-000111",
        "31456789",
        D("2500.00"),
        D("375.00"),
        20,
        10,
        repayments=(("1000.00", "CASH-0111", 12),),
    ),
)


def officer_group_ensure() -> Group:
    """The "Loan officers" group with the model permissions an officer needs in the admin (the admin
    itself limits them to their own portfolio)."""
    group, _ = Group.objects.get_or_create(name=OFFICER_GROUP)
    wanted = Q()
    for app_label, codename in OFFICER_PERMISSIONS:
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    permissions = list(Permission.objects.filter(wanted))
    if len(permissions) != len(OFFICER_PERMISSIONS):
        raise CommandError("permissions are missing: run `manage.py migrate` first")
    group.permissions.set(permissions)
    return group


def _user_ensure(username: str, *, password: str, **fields: object) -> User:
    """Create the user if missing; an existing one (and its password) is left as it is."""
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username, **fields)
        user.set_password(password)
        user.save()
    return user


class Command(BaseCommand):
    help = "Create demo staff, borrowers, loans and an API token (DEBUG only). Safe to run again."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--base-url",
            default=DEFAULT_BASE_URL,
            help=f"where the demo is served (default {DEFAULT_BASE_URL})",
        )

    def handle(self, *args: object, **options: object) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates an 'admin' superuser with the password 'admin'; it runs only with DEBUG on"
            )
        try:
            with transaction.atomic():
                new_borrowers, new_loans = self._seed()
                token = self._demo_token()
        except HavenError as exc:
            raise CommandError(f"demo data not created: {exc.detail}") from exc
        self._report(new_borrowers, new_loans, token, str(options["base_url"]).rstrip("/"))

    def _seed(self) -> tuple[int, int]:
        actor = Actor.system("seed_demo")
        group = officer_group_ensure()
        _user_ensure(
            ADMIN_USERNAME,
            password=ADMIN_PASSWORD,
            email="admin@haven.example",
            role=User.Role.ADMIN,
            is_staff=True,
            is_superuser=True,
        )
        officers = {}
        for username, first_name, last_name in OFFICERS:
            officer = _user_ensure(
                username,
                password=OFFICER_PASSWORD,
                first_name=first_name,
                last_name=last_name,
                email=f"{username}@haven.example",
                role=User.Role.OFFICER,
                is_staff=True,
            )
            officer.groups.add(group)
            officers[username] = officer

        new_borrowers = 0
        for spec in BORROWERS:
            if Borrower.objects.filter(national_id=spec.national_id).exists():
                continue
            borrower = services.borrower_create(
                full_name=spec.full_name,
                phones=list(spec.phones),
                national_id=spec.national_id,
                preferred_language=spec.language,
                loan_officer=officers[spec.officer],
                actor=actor,
            )
            if spec.credit:
                services.borrower_credit_add(
                    borrower=borrower,
                    amount=spec.credit,
                    actor=actor,
                    reference="DEMO",
                    reason="Overpaid an earlier loan",
                )
            new_borrowers += 1

        today = timezone.localdate()
        new_loans = 0
        for loan_spec in LOANS:
            if Loan.objects.filter(loan_number=loan_spec.loan_number).exists():
                continue
            disbursed_on = today - timedelta(days=loan_spec.disbursed_days_ago)
            loan = services.loan_create(
                loan_number=loan_spec.loan_number,
                borrower=Borrower.objects.get(national_id=loan_spec.national_id),
                principal=loan_spec.principal,
                interest=loan_spec.interest,
                fees=loan_spec.fees,
                penalties=loan_spec.penalties,
                disbursed_on=disbursed_on,
                due_date=today + timedelta(days=loan_spec.due_in_days),
                actor=actor,
            )
            for amount, reference, days_after in loan_spec.repayments:
                loan.refresh_from_db()
                services.repayment_post(
                    loan=loan,
                    amount=loan.outstanding if amount == "full" else Decimal(amount),
                    actor=actor,
                    source="manual",
                    reference=reference,
                    reason="Demo data",
                    posted_at=timezone.now() - timedelta(days=loan_spec.disbursed_days_ago - days_after),
                )
            new_loans += 1
        # Loans added later (in the admin) continue after the demo numbers instead of starting at 1.
        # Only numbers in the counter's own pattern can collide with those it hands out (as in the import).
        highest = max(
            int(match[1]) for spec in LOANS if (match := LOAN_NUMBER_PATTERN.match(spec.loan_number))
        )
        services.loan_number_counter_raise_to(highest)
        return new_borrowers, new_loans

    def _demo_token(self) -> str:
        """The demo's API token, derived from the (development) SECRET_KEY: every run prints the same
        working token and stores nothing new; tokens are kept only as digests, so a random one
        could not be shown again."""
        admin = User.objects.get(username=ADMIN_USERNAME)
        secret = hmac.new(settings.SECRET_KEY.encode(), b"seed_demo api token", hashlib.sha256).digest()
        token = TOKEN_PREFIX + "demo_" + base64.urlsafe_b64encode(secret).decode().rstrip("=")
        if api_token_authenticate(token) is None:
            services.api_token_create(user=admin, name=TOKEN_NAME, token=token)
        return token

    def _report(self, new_borrowers: int, new_loans: int, token: str, base_url: str) -> None:
        out = self.stdout
        out.write(
            self.style.SUCCESS(
                f"Demo data ready: {Borrower.objects.count()} borrowers ({new_borrowers} new), "
                f"{Loan.objects.count()} loans ({new_loans} new)."
            )
        )
        out.write("")
        out.write(f"Admin: {base_url}/admin/   Staff pages: {base_url}/payments/dashboard/")
        out.write(f"  {ADMIN_USERNAME} / {ADMIN_PASSWORD}  (superuser)")
        for username, _, _ in OFFICERS:
            out.write(f"  {username} / {OFFICER_PASSWORD}  (loan officer, sees own portfolio)")
        out.write("  (passwords are set when a user is first created; later runs leave them alone)")
        out.write("")
        out.write(f"API token for {ADMIN_USERNAME} (the same on every run of this demo):")
        out.write(f"  {token}")
        out.write("")
        out.write("Try:")
        out.write(f'  curl -H "Authorization: Bearer {token}" {base_url}/api/v1/loans/LOAN-000101')
