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
import random
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on sys.path: the project root takes its place, so that
# the apps and bench.harness import as themselves.
if sys.path and Path(sys.path[0]).resolve() == BASE_DIR / "bench":
    sys.path[0] = str(BASE_DIR)

from bench.harness import django_migrated, throwaway_database  # noqa: E402

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

    with throwaway_database(BENCH_DATABASE) as workdir:
        _run(args.rows, workdir, update=args.update)


def _run(rows: int, workdir: Path, *, update: bool) -> None:
    django_migrated()
    from django.db import connection

    from core.actors import Actor
    from core.models import User
    from core.services import loan_import_csv

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
