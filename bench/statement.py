"""Benchmark ``statement_import``: a 100,000-row M-Pesa org portal statement imported into empty
books (every completed pay-in created), then again (every receipt known, nothing changed).

    flock /work/wt/bench.lock .venv/bin/python bench/statement.py [--rows 100000]

Like bench/import_loans.py it never touches the database DATABASE_URL names: on PostgreSQL it
creates (and drops) ``haven_bench_statement`` on the same server, otherwise a throwaway SQLite file
(``bench.harness.throwaway_database``).
Processing (matching, posting) is the workers' job and not measured: the doorbell's tasks go to an
in-memory broker nobody reads. Target: each import of 100,000 rows in under a minute.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on sys.path, where bench/payments.py would shadow the
# payments app: the project root takes its place.
if sys.path and Path(sys.path[0]).resolve() == BASE_DIR / "bench":
    sys.path[0] = str(BASE_DIR)

from bench.harness import django_migrated, throwaway_database  # noqa: E402
from core.dates import NAIROBI  # noqa: E402

BENCH_DATABASE = "haven_bench_statement"
TARGET_SECONDS = 60.0
NAMES = ["JANE DOE", "JOHN KAMAU", "MARY ACHIENG", "PETER OTIENO", "GRACE NJERI", "FAITH WAFULA"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    with throwaway_database(BENCH_DATABASE) as workdir:
        # Tasks are published, not run here: the import's own cost is what is measured.
        os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
        os.environ.pop("REDIS_URL", None)
        failed = _run(args.rows, workdir)
    sys.exit(1 if failed else 0)


def _run(rows: int, workdir: Path) -> bool:
    django_migrated()
    from django.db import connection

    from payments.models import MpesaConfiguration, MpesaTransaction
    from payments.services.statements import statement_import

    config = MpesaConfiguration.objects.create(
        business_short_code="600984",
        base_url="https://pay.haven.example",
        consumer_key="k",
        consumer_secret="bench",  # noqa: S106 - a throwaway database
    )
    path = workdir / "statement.csv"
    started = time.perf_counter()
    pay_ins = _write_statement(path, rows, seed=20_240_305)
    print(f"database: {connection.vendor}")
    print(f"generated {rows:,} rows ({pay_ins:,} completed pay-ins) in {time.perf_counter() - started:.1f}s")

    failed = False
    for label in ("first import", "re-import"):
        started = time.perf_counter()
        result = statement_import(path=path, config=config)
        seconds = time.perf_counter() - started
        ok = seconds < TARGET_SECONDS
        failed |= not ok
        print(
            f"{label:>12}: {seconds:5.1f}s  {result.read / seconds:8,.0f} rows/s  ({result.summary()})  "
            f"target < {TARGET_SECONDS:.0f}s: {'ok' if ok else 'MISSED'}"
        )
    stored = MpesaTransaction.objects.filter(source="statement").count()
    if stored != pay_ins:
        print(f"ERROR: {stored:,} payments stored for {pay_ins:,} pay-ins")
        failed = True
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    return failed


def _write_statement(path: Path, rows: int, *, seed: int) -> int:
    """An org portal export: the account summary, then rows newest first; about 85% completed pay-ins,
    the rest charges and failed payments. Returns how many completed pay-ins it holds."""
    rng = random.Random(seed)
    when = datetime(2024, 3, 31, 23, 59, 0, tzinfo=NAIROBI)
    balance = 5_000_000
    pay_ins = 0
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerows([["Account Holder:", "HAVEN GRAZURI LTD"], ["Short Code:", "600984"], []])
        writer.writerow(
            ["Receipt No.", "Completion Time", "Initiation Time", "Details", "Transaction Status", "Paid In",
             "Withdrawn", "Balance", "Balance Confirmed", "Reason Type", "Other Party Info",
             "Linked Transaction ID", "A/C No."]
        )  # fmt: skip
        for serial in range(rows):
            when -= timedelta(seconds=rng.randrange(5, 40))
            receipt = f"SBX{serial:07d}"
            stamp = when.strftime("%Y-%m-%d %H:%M:%S")
            phone = f"2547{rng.randrange(10_000_000, 99_999_999)}"
            name = rng.choice(NAMES)
            roll = rng.random()
            if roll < 0.10:
                balance -= 23
                writer.writerow([receipt, stamp, stamp, "Business Charges", "Completed", "", "23.00", f"{balance:,}.00",
                                 "true", "Business Charges", "", "", ""])  # fmt: skip
                continue
            amount = rng.randrange(100, 20_000)
            status = "Failed" if roll < 0.15 else "Completed"
            account = rng.choice((f"LOAN-{rng.randrange(1, 100_000):06d}", f"0{phone[3:]}", "", "loan 42"))
            if status == "Completed":
                balance += amount
                pay_ins += 1
            writer.writerow(
                [receipt, stamp, stamp, f"Pay Bill from {phone} - {name} Acc. {account}", status, f"{amount:,}.00", "",
                 f"{balance:,}.00", "true", "Pay Bill Online", f"{phone} - {name}", "", account]
            )  # fmt: skip
    return pay_ins


if __name__ == "__main__":
    main()
