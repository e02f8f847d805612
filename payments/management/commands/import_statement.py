"""``manage.py import_statement FILE``: store the payments an M-Pesa statement export shows that the
system never received (their callbacks were lost), and report receipts that disagree."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from core.exceptions import HavenError
from payments.models import MpesaConfiguration
from payments.services.statements import statement_import

# Differences and errors listed in full up to this many each; the summary line counts them all.
MAX_LISTED = 50


class Command(BaseCommand):
    help = (
        "Import an M-Pesa org portal statement export (CSV or XLSX). Prints a progress bar and one "
        "summary line: read known created mismatched ignored errors."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--short-code", help="the paybill of the statement (default: the active one)")

    def handle(self, *args: object, file: Path, short_code: str | None, **options: object) -> None:
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
        try:
            config = MpesaConfiguration.get_active_config(short_code)
        except HavenError as exc:
            raise CommandError(exc.detail) from None
        with tqdm(unit=" rows", desc=file.name, file=self.stderr, disable=None) as bar:
            try:
                result = statement_import(path=file, config=config, progress=bar.update)
            except HavenError as exc:
                bar.leave = False
                raise CommandError(exc.detail) from None
        for mismatch in result.mismatches[:MAX_LISTED]:
            self.stderr.write(f"differs: {mismatch}")
        for problem in result.problems[:MAX_LISTED]:
            self.stderr.write(f"error: {problem}")
        self.stdout.write(result.summary())
