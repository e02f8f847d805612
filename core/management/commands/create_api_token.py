"""``manage.py create_api_token USERNAME [--name N]``: print a new REST API token, once."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import User
from core.services import api_token_create


class Command(BaseCommand):
    help = "Create a REST API bearer token for a staff user. The token is printed once and never stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for, e.g. 'reporting script'")

    def handle(self, *args: object, username: str, name: str, **options: object) -> None:
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        if not user.is_active:
            raise CommandError(f"{username} is inactive: the API would refuse its token")
        if not (user.is_staff or user.is_admin):
            self.stderr.write(f"warning: {username} is not staff; the API will answer this token with 403")
        row, token = api_token_create(user=user, name=name)
        self.stdout.write(token)
        self.stdout.write(
            f"This is token {row.prefix}... for {username}. Store it now: it will not be shown again."
        )
