"""``manage.py import_loans FILE.csv``: import a loan book, all or nothing (``-`` reads stdin)."""

import io
import sys
from typing import TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.actors import Actor
from core.exceptions import ImportFailed
from core.services import ImportResult, loan_import_csv


class Command(BaseCommand):
    help = (
        "Import borrowers and loans from a CSV file (columns: loan_number, borrower_name, phone, principal, "
        "due_date, and optionally national_id, interest, fees, penalties, principal_disbursed, disbursed_on, "
        "officer, status, language). Amounts are outstanding amounts. Nothing is imported if any row is wrong."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path of the CSV file, or - for standard input")

    def handle(self, *args: object, file: str, **options: object) -> None:
        try:
            if file == "-":
                result = self._import_stdin()
            else:
                # utf-8-sig drops the byte-order mark Excel writes at the start of "CSV UTF-8" files.
                with open(file, encoding="utf-8-sig", newline="") as stream:
                    result = self._import(stream)
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise CommandError(
                f"{file} is not UTF-8 text: save it from the spreadsheet as 'CSV UTF-8'"
            ) from None
        except ImportFailed as exc:
            for error in exc.errors:
                self.stderr.write(error)
            raise CommandError(exc.detail) from None
        self.stdout.write(
            f"Imported {result.rows:,} rows: {result.borrowers_created:,} borrowers created, "
            f"{result.borrowers_updated:,} updated; {result.loans_created:,} loans created, "
            f"{result.loans_updated:,} updated, {result.loans_unchanged:,} unchanged."
        )
        if result.loans_balances_kept:
            # Not an error: repayments posted here since the file was written are worth more than it.
            kept = result.loans_balances_kept
            self.stdout.write(
                f"{kept:,} loan keeps the balances posted here (its row's amounts were ignored)."
                if kept == 1
                else f"{kept:,} loans keep the balances posted here (their rows' amounts were ignored)."
            )

    def _import(self, stream: TextIO) -> ImportResult:
        return loan_import_csv(file=stream, actor=Actor.system("import_loans"), progress=True)

    def _import_stdin(self) -> ImportResult:
        if not hasattr(sys.stdin, "buffer"):  # already text (replaced in tests)
            return self._import(sys.stdin)
        # Re-decode the raw bytes so a BOM is dropped whatever the terminal's locale says.
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        try:
            return self._import(stream)
        finally:
            stream.detach()  # closing the wrapper would close the process's stdin
