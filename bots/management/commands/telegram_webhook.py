"""``manage.py telegram_webhook set URL | info | delete``: register the bot's webhook with Telegram
(with ``TELEGRAM_WEBHOOK_SECRET`` and only the update types the bot reads), show it, or remove it.
Run it once per deployment, not from every process at start-up."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bots.clients.telegram import TelegramClient
from bots.handlers import ALLOWED_UPDATES
from core.exceptions import ExternalServiceError


class Command(BaseCommand):
    help = "Register (set URL), show (info) or remove (delete) the Telegram webhook."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["set", "info", "delete"])
        parser.add_argument("url", nargs="?", help="for set: https://host/bots/telegram/")

    def handle(self, *args: object, action: str, url: str | None, **options: object) -> None:
        client = TelegramClient()
        try:
            if action == "set":
                if not url or not url.startswith("https://"):
                    raise CommandError(
                        "set needs the webhook's https:// URL, e.g. https://pay.example/bots/telegram/"
                    )
                if len(settings.TELEGRAM_WEBHOOK_SECRET) < 16:
                    raise CommandError("set TELEGRAM_WEBHOOK_SECRET (16+ characters of A-Za-z0-9_-) first")
                client.set_webhook(
                    url=url, secret_token=settings.TELEGRAM_WEBHOOK_SECRET, allowed_updates=ALLOWED_UPDATES
                )
                self.stdout.write(f"Webhook set to {url} for {', '.join(ALLOWED_UPDATES)}.")
            elif action == "info":
                self.stdout.write(json.dumps(client.webhook_info(), indent=2, default=str))
            else:
                client.delete_webhook()
                self.stdout.write("Webhook deleted.")
        except ExternalServiceError as exc:
            raise CommandError(exc.detail) from None
