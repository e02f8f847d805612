"""``manage.py telegram_link USERNAME``: print a single-use, 15-minute code linking a staff member's
Telegram account to the bot, and the deep link that sends it (or, while the bot is off, how to turn
it on)."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.actors import Actor
from core.exceptions import InvalidState
from core.models import User
from core.services.staff import TELEGRAM_BOT_OFF, user_telegram_code_create


class Command(BaseCommand):
    help = "Make a single-use Telegram link code (valid 15 minutes) for a staff user and print its t.me link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: object, username: str, **options: object) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        try:
            code, link = user_telegram_code_create(user=user, actor=Actor.system("manage.py telegram_link"))
        except InvalidState as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(code)
        if not link:
            self.stdout.write(TELEGRAM_BOT_OFF)
            self.stdout.write(
                f"The code is kept: if the bot is on within 15 minutes, {username} sends /start {code} to it "
                "(it works once); after that, run this command again for a new code and its link."
            )
            return
        self.stdout.write(link)
        self.stdout.write(
            f"{username} opens the link (or sends /start {code} to the bot) within 15 minutes; the code works once."
        )
