"""factory_boy factories for the lending core and the M-Pesa configuration. Phone numbers are unique,
valid Kenyan mobiles."""

import datetime
from decimal import Decimal

import factory
from django.utils import timezone

from core.models import Borrower, BorrowerPhone, Loan, User
from payments.models import MpesaConfiguration


class OfficerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"officer{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@haven.example")
    role = User.Role.OFFICER
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pass-word-123")

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        # set_password ran after the insert; store the hash so session logins stay valid.
        if create:
            instance.save(update_fields=["password"])


class AdminFactory(OfficerFactory):
    username = factory.Sequence(lambda n: f"admin{n}")
    role = User.Role.ADMIN
    is_superuser = True


class BorrowerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Borrower
        skip_postgeneration_save = True

    full_name = factory.Faker("name")
    preferred_language = "en"

    @factory.post_generation
    def phones(self, create, extracted, **kwargs):
        if not create:
            return
        numbers = extracted if extracted is not None else [f"+2547{self.pk % 100_000_000:08d}"]
        for position, number in enumerate(numbers):
            BorrowerPhone.objects.create(borrower=self, number=number, is_primary=position == 0)


class LoanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Loan

    loan_number = factory.Sequence(lambda n: f"LOAN-{900000 + n:06d}")
    borrower = factory.SubFactory(BorrowerFactory)
    principal_disbursed = Decimal("10000.00")
    principal = factory.LazyAttribute(lambda loan: loan.principal_disbursed)
    interest = Decimal("0.00")
    fees = Decimal("0.00")
    penalties = Decimal("0.00")
    disbursed_on = factory.LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=20))
    due_date = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=10))
    loan_officer = factory.LazyAttribute(lambda loan: loan.borrower.loan_officer)


class MpesaConfigurationFactory(factory.django.DjangoModelFactory):
    """A paybill on the local environment (the emulator); tests override what they look at."""

    class Meta:
        model = MpesaConfiguration

    name = "Test paybill"
    environment = MpesaConfiguration.Environment.LOCAL
    consumer_key = "test-key"
    consumer_secret = "test-secret"
    business_short_code = "600984"
    base_url = "https://pay.haven.example"
