"""``manage.py telegram_poll``: run the bot by long polling (getUpdates), for a developer without a
public URL. Each update is stored and handled exactly as a webhook's would be. Do not run it while a
webhook is set (Telegram refuses getUpdates then: ``telegram_webhook delete`` first)."""

import logging

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bots.clients.telegram import TelegramClient
from bots.handlers import ALLOWED_UPDATES
from bots.services.updates import telegram_update_handle, telegram_update_store_polled
from core.exceptions import ExternalServiceError

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the staff bot by long polling (development; no public URL needed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=int, default=30, help="seconds each getUpdates waits")
        parser.add_argument("--once", action="store_true", help="one getUpdates round, then stop")

    def handle(self, *args: object, timeout: int, once: bool, **options: object) -> None:
        client = TelegramClient()
        offset: int | None = None
        self.stdout.write("Polling Telegram for updates (Ctrl-C stops).")
        while True:
            try:
                updates = client.get_updates(offset=offset, timeout=timeout, allowed_updates=ALLOWED_UPDATES)
            except ExternalServiceError as exc:
                if exc.permanent:
                    raise CommandError(exc.detail) from None
                logger.warning("getUpdates failed: %s", exc.detail)
                updates = []
            for data in updates:
                offset = data["update_id"] + 1
                row = telegram_update_store_polled(data=data)
                if row is not None:
                    outcome = telegram_update_handle(update_pk=row.pk, client=client)
                    self.stdout.write(f"update {data['update_id']}: {outcome}")
            if once:
                return
