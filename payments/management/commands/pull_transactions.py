"""``manage.py pull_transactions [--hours N]``: the beat task's Pull Transactions sync, run now."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.exceptions import HavenError
from payments.models import MpesaConfiguration
from payments.services.pull import mpesa_pull_transactions


class Command(BaseCommand):
    help = (
        "Ask Daraja (Pull Transactions) for the payments each active paybill received in the last hours "
        "and store those the system lacks. Prints: fetched known created."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--hours", type=float, default=None, help="how far back (default MPESA_PULL_HOURS; at most 48)"
        )
        parser.add_argument("--short-code", help="only this paybill (default: every active one)")

    def handle(self, *args: object, hours: float | None, short_code: str | None, **options: object) -> None:
        configs = MpesaConfiguration.objects.filter(is_active=True)
        if short_code:
            configs = configs.filter(business_short_code=short_code)
        if not configs:
            raise CommandError(
                "no active M-Pesa configuration" + (f" for {short_code}" if short_code else "")
            )
        failed = False
        for config in configs:
            try:
                result = mpesa_pull_transactions(
                    config=config, hours=settings.MPESA_PULL_HOURS if hours is None else hours
                )
            except HavenError as exc:
                self.stderr.write(f"{config.business_short_code}: {exc.detail}")
                failed = True
                continue
            self.stdout.write(
                f"{config.business_short_code}: {result.summary()} ({result.code} {result.message})".rstrip()
            )
        if failed:
            raise CommandError("Pull Transactions failed for at least one paybill")
