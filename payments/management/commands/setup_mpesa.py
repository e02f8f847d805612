"""``manage.py setup_mpesa``: create or update an M-Pesa configuration and, with ``--register``, register
its callback URLs with Daraja (or the local emulator)."""

import json
import os

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.exceptions import HavenError
from payments.models import MpesaConfiguration
from payments.services.daraja import mpesa_configure, mpesa_register_urls


class Command(BaseCommand):
    help = (
        "Create or update the M-Pesa configuration of a short code, print the callback URLs it registers and, "
        "with --register, register them with Daraja. The consumer secret is stored encrypted and never printed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        Config = MpesaConfiguration
        parser.add_argument("--environment", required=True, choices=Config.Environment.values)
        parser.add_argument(
            "--consumer-key",
            default=os.environ.get("MPESA_CONSUMER_KEY", ""),
            help="Daraja app consumer key (default: $MPESA_CONSUMER_KEY)",
        )
        parser.add_argument(
            "--consumer-secret",
            default=os.environ.get("MPESA_CONSUMER_SECRET", ""),
            help="Daraja app consumer secret (default: $MPESA_CONSUMER_SECRET, which keeps it out of shell history)",
        )
        parser.add_argument(
            "--business-short-code", required=True, help="paybill or till number, e.g. 600984"
        )
        parser.add_argument(
            "--base-url",
            required=True,
            help="public address of this system; callbacks go to <base-url>/payments/c2b/<token>/...",
        )
        parser.add_argument("--api-version", choices=Config.ApiVersion.values, default=Config.ApiVersion.V2)
        parser.add_argument(
            "--response-type",
            choices=Config.ResponseType.values,
            default=Config.ResponseType.COMPLETED,
            help="what M-Pesa does when the validation URL does not answer (default: Completed)",
        )
        parser.add_argument("--register", action="store_true", help="register the URLs with Daraja now")
        parser.add_argument(
            "--initiator", default="", help="API operator for Transaction Status queries (default: keep)"
        )
        parser.add_argument(
            "--security-credential",
            default=os.environ.get("MPESA_SECURITY_CREDENTIAL", ""),
            help="the initiator's encrypted password (default: $MPESA_SECURITY_CREDENTIAL, else keep)",
        )

    def handle(
        self,
        *args: object,
        environment: str,
        consumer_key: str,
        consumer_secret: str,
        business_short_code: str,
        base_url: str,
        api_version: str,
        response_type: str,
        register: bool,
        initiator: str,
        security_credential: str,
        **options: object,
    ) -> None:
        if not consumer_key or not consumer_secret:
            raise CommandError(
                "give --consumer-key and --consumer-secret (or set MPESA_CONSUMER_KEY and MPESA_CONSUMER_SECRET)"
            )
        try:
            config, created = mpesa_configure(
                environment=environment,
                consumer_key=consumer_key,
                consumer_secret=consumer_secret,
                business_short_code=business_short_code,
                base_url=base_url,
                api_version=api_version,
                response_type=response_type,
                initiator_name=initiator,
                security_credential=security_credential,
            )
        except HavenError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"{'Created' if created else 'Updated'} {config}.")
        self.stdout.write(f"Validation URL:   {config.validation_url}")
        self.stdout.write(f"Confirmation URL: {config.confirmation_url}")
        self.stdout.write(f"Response type {config.response_type}, API {config.api_version}.")
        if not register:
            self.stdout.write("Run again with --register to register these URLs with Daraja.")
            return
        try:
            result = mpesa_register_urls(config=config)
        except HavenError as exc:
            raise CommandError(f"registration failed: {exc.detail}") from None
        self.stdout.write(self.style.SUCCESS(f"Daraja registered the URLs (API {result['api_version']}):"))
        self.stdout.write(json.dumps(result["answer"], indent=2, sort_keys=True))
