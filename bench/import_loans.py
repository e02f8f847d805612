"""Benchmark ``loan_import_csv``: a first import of N rows, then a re-import of the same file.

    .venv/bin/python bench/import_loans.py [--rows 100000] [--update]

Runs against the database kind DATABASE_URL names, but never against that database itself: on
PostgreSQL it creates (and afterwards drops) a database named ``haven_bench_import`` on the same
server; otherwise it uses a throwaway SQLite file. ``--update`` adds a third import in which every
loan's balance has changed (the monthly re-import of a whole book).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "haven_bench_import"
OFFICERS = [f"bench_officer{n}" for n in range(1, 6)]
FIRST_NAMES = ["Jane", "John", "Mary", "Peter", "Grace", "Joseph", "Faith", "David", "Mercy", "Samuel"]
LAST_NAMES = [
    "Wanjiru",
    "Otieno",
    "Kamau",
    "Achieng",
    "Mwangi",
    "Njeri",
    "Kiprop",
    "Wafula",
    "Chebet",
    "Ouma",
]
LANGUAGES = ["en", "en", "en", "sw", "Kiswahili", "English", ""]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--update", action="store_true", help="also time a re-import with changed balances")
    args = parser.parse_args()

    sys.path.insert(0, str(BASE_DIR))
    import environ

    # Same precedence as config/settings.py: the real environment first, then a .env file.
    if (BASE_DIR / ".env").is_file():
        environ.Env.read_env(BASE_DIR / ".env")
    server_url = os.environ.get("DATABASE_URL", "")
    with tempfile.TemporaryDirectory(prefix="haven-bench-") as workdir:
        on_postgres = urlsplit(server_url).scheme in ("postgres", "postgresql", "psql", "pgsql")
        if on_postgres:
            _postgres_recreate(server_url)
            os.environ["DATABASE_URL"] = urlsplit(server_url)._replace(path=f"/{BENCH_DATABASE}").geturl()
        else:
            os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
        try:
            _run(args.rows, Path(workdir), update=args.update)
        finally:
            if on_postgres:
                from django.db import connections

                connections.close_all()
                _postgres_drop(server_url)


def _postgres_recreate(server_url: str) -> None:
    _postgres_drop(server_url)
    with _postgres_admin(server_url) as cursor:
        cursor.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')


def _postgres_drop(server_url: str) -> None:
    with _postgres_admin(server_url) as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}"')


class _postgres_admin:
    """An autocommit cursor on the database DATABASE_URL names (CREATE DATABASE cannot run in a
    transaction)."""

    def __init__(self, url: str) -> None:
        import environ
        import psycopg2

        config = environ.Env.db_url_config(url)
        self.connection = psycopg2.connect(
            dbname=config["NAME"] or "postgres",
            user=config.get("USER") or None,
            password=config.get("PASSWORD") or None,
            host=config.get("HOST") or None,
            port=config.get("PORT") or None,
        )
        self.connection.autocommit = True

    def __enter__(self):
        self.cursor = self.connection.cursor()
        return self.cursor

    def __exit__(self, *exc_info: object) -> None:
        self.cursor.close()
        self.connection.close()


def _run(rows: int, workdir: Path, *, update: bool) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Settings default to production, which needs secrets this benchmark has no use for; it asks for
    # development and turns DEBUG off itself below, as in production.
    os.environ.setdefault("DJANGO_DEBUG", "true")
    import django

    django.setup()
    from django.conf import settings

    # As in production: with DEBUG on, Django keeps the text of the last 9,000 queries in memory.
    settings.DEBUG = False
    from django.core.management import call_command
    from django.db import connection

    from core.actors import Actor
    from core.models import User
    from core.services import loan_import_csv

    call_command("migrate", verbosity=0)
    for username in OFFICERS:
        User.objects.get_or_create(username=username, defaults={"role": User.Role.OFFICER, "is_staff": True})

    path = workdir / "loans.csv"
    started = time.perf_counter()
    count = _write_csv(path, rows, seed=20_250_101)
    print(f"database: {connection.vendor} ({connection.settings_dict['NAME']})")
    print(f"generated {count:,} rows in {time.perf_counter() - started:.1f}s -> {path}")

    runs = [("first import", path), ("re-import", path)]
    if update:
        changed = workdir / "loans-changed.csv"
        _write_csv(changed, rows, seed=20_250_101, balance_shift=True)
        runs.append(("changed balances", changed))
    actor = Actor.system("bench_import_loans")
    for label, csv_path in runs:
        started = time.perf_counter()
        with open(csv_path, encoding="utf-8-sig", newline="") as stream:
            result = loan_import_csv(file=stream, actor=actor)
        seconds = time.perf_counter() - started
        print(
            f"{label:>16}: {seconds:6.1f}s  {result.rows / seconds:8,.0f} rows/s  "
            f"(borrowers +{result.borrowers_created:,} ~{result.borrowers_updated:,}; loans "
            f"+{result.loans_created:,} ~{result.loans_updated:,} ={result.loans_unchanged:,})"
        )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak memory: {peak_kib / 1024:,.0f} MiB")


def _write_csv(path: Path, rows: int, *, seed: int, balance_shift: bool = False) -> int:
    """A loan book: ~70% of borrowers with one loan, the rest with two or three; phones written
    the several ways spreadsheets hold them; some fees, penalties, paid and written-off loans."""
    rng = random.Random(seed)
    today = date(2025, 6, 1)
    header = [
        "loan_number", "borrower_name", "phone", "national_id", "principal", "interest", "fees",
        "penalties", "principal_disbursed", "disbursed_on", "due_date", "officer", "status", "language",
    ]  # fmt: skip
    subscribers = rng.sample(range(10_000_000), k=rows)  # unique 712xxxxxxx / 722xxxxxxx numbers
    written = 0
    loan_serial = 0
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        borrower = 0
        while written < rows:
            subscriber = subscribers[borrower]
            local = f"7{1 + borrower % 2}{subscriber:07d}"
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            national_id = str(20_000_000 + borrower) if rng.random() < 0.8 else ""
            officer = rng.choice(OFFICERS)
            language = rng.choice(LANGUAGES)
            loans = 1 if rng.random() < 0.7 else rng.choice((2, 3))
            for _ in range(min(loans, rows - written)):
                loan_serial += 1
                phone = rng.choice((f"0{local}", f"+254{local}", f"254{local}", f"0{local[:3]} {local[3:]}"))
                disbursed = rng.randrange(10, 500) * 100
                disbursed_on = today - timedelta(days=rng.randrange(1, 365))
                roll = rng.random()
                if roll < 0.1:
                    status, principal, interest, fees, penalties = "paid", 0, 0, 0, 0
                else:
                    status = "written_off" if roll < 0.12 else ""
                    principal = rng.randrange(0, disbursed + 1, 50)
                    interest = rng.randrange(0, disbursed // 10 + 1)
                    fees = rng.choice((0, 0, 0, 100, 250))
                    penalties = rng.choice((0, 0, 0, 0, 150, 320.5))
                    if balance_shift:
                        principal += 1
                writer.writerow(
                    [
                        f"LOAN-{loan_serial:06d}",
                        name,
                        phone,
                        national_id,
                        f"{principal:,.2f}",
                        interest,
                        fees or "",
                        penalties or "",
                        disbursed,
                        disbursed_on.isoformat(),
                        (disbursed_on + timedelta(days=30)).isoformat(),
                        officer,
                        status,
                        language,
                    ]
                )
                written += 1
            borrower += 1
    return written


if __name__ == "__main__":
    main()
