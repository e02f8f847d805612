"""``manage.py simulate_c2b --phone 0712345678 --amount 500``: a customer pays the paybill, in the sandbox or
the local emulator (never in production)."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.exceptions import HavenError
from core.money import format_kes, to_money
from core.phones import mask_phone
from payments.clients.daraja import MSISDN_FORMATS
from payments.models import MpesaConfiguration
from payments.services.daraja import mpesa_simulate


class Command(BaseCommand):
    help = (
        "Simulate an M-Pesa C2B payment through the active configuration (local emulator or Daraja sandbox) "
        "and print its TransID. Refused in production."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--phone", required=True, help="the payer, e.g. 0712345678")
        parser.add_argument("--amount", required=True, help="whole shillings, e.g. 500")
        parser.add_argument(
            "--reference", default="", help="what the payer types as account, e.g. LOAN-000123"
        )
        parser.add_argument(
            "--msisdn-format",
            choices=MSISDN_FORMATS,
            default="hashed",
            help="how the emulator writes the payer's number in the callbacks (default: hashed)",
        )
        parser.add_argument("--short-code", help="the configuration to pay (default: the active one)")
        parser.add_argument(
            "--no-callback",
            action="store_true",
            help="local emulator only: the payment is made but its callbacks are lost (recover it with "
            "pull_transactions, a statement import or a status query)",
        )

    def handle(
        self,
        *args: object,
        phone: str,
        amount: str,
        reference: str,
        msisdn_format: str,
        short_code: str | None,
        no_callback: bool,
        **options: object,
    ) -> None:
        try:
            config = MpesaConfiguration.get_active_config(short_code)
        except HavenError as exc:
            raise CommandError(f"{exc.detail}: run setup_mpesa first") from None
        if config.environment == MpesaConfiguration.Environment.PRODUCTION:
            raise CommandError(
                f"refused: {config} is a production configuration, and M-Pesa has no simulation in production"
            )
        try:
            answer = mpesa_simulate(
                config=config,
                phone=phone,
                amount=amount,
                bill_reference=reference,
                msisdn_format=msisdn_format,
                deliver_callbacks=not no_callback,
            )
        except HavenError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(
            f"{mask_phone(phone)} paid {format_kes(to_money(amount))} to {config.business_short_code}"
            + (f" (account {reference})" if reference else "")
            + f" through the {config.get_environment_display()}."
        )
        trans_id = answer.get("TransID")
        if no_callback:
            self.stdout.write("Its callbacks were not delivered: the system has not heard of it.")
        if trans_id:
            self.stdout.write(f"TransID: {trans_id}")
        else:
            self.stdout.write(
                f"Daraja accepted the request ({answer.get('OriginatorCoversationID', 'no id')}); "
                "the TransID arrives with the confirmation callback."
            )
