"""``manage.py import_statement FILE``: store the payments an M-Pesa statement export shows that the
system never received (their callbacks were lost), and report receipts that disagree.

Its output is a progress bar (on a terminal) and one summary line, whatever the statement's size:
the engine's line per payment (recovered, processed by the in-process workers of a development
setup, Celery's task lines) is held back while the import runs, unless asked for with ``-v 2``.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from tqdm import tqdm

from core.exceptions import HavenError
from payments.models import MpesaConfiguration
from payments.services.statements import statement_import

# Differences and errors listed in full up to this many each; the summary line counts them all.
MAX_LISTED = 50


class _BarStream:
    """What tqdm draws, written as it is: the command's OutputWrapper would end every frame with a
    newline (and colour it as an error), so the bar would scroll down the terminal."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self._wrapper = wrapper

    def write(self, text: str) -> None:
        self._wrapper.write(text, style_func=_as_is, ending="")

    def flush(self) -> None:
        self._wrapper.flush()


def _as_is(text: str) -> str:
    return text


@contextmanager
def _per_payment_logs_held_back(verbosity: int) -> Iterator[None]:
    """Below verbosity 2, no INFO (or DEBUG) log record is made while the import runs; warnings and
    errors still are."""
    if verbosity >= 2:
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.INFO))
    try:
        yield
    finally:
        logging.disable(previous)


class Command(BaseCommand):
    help = (
        "Import an M-Pesa org portal statement export (CSV or XLSX). Prints a progress bar (on a terminal) "
        "and one summary line: read known created mismatched ignored errors; then looks for balance gaps. "
        "-v 2 also shows the log lines of each payment."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--short-code", help="the paybill of the statement (default: the active one)")

    def handle(
        self, *args: object, file: Path, short_code: str | None, verbosity: int = 1, **options: object
    ) -> None:
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
        try:
            config = MpesaConfiguration.get_active_config(short_code)
        except HavenError as exc:
            raise CommandError(exc.detail) from None
        # A bar only for a person watching: output read by a program (a pipe, a file, cron) gets the
        # summary line alone.
        watched = self.stdout.isatty() and self.stderr.isatty()
        with (
            _per_payment_logs_held_back(verbosity),
            tqdm(unit=" rows", desc=file.name, file=_BarStream(self.stderr), disable=not watched) as bar,
        ):
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
