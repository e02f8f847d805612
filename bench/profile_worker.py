"""Where a worker's CPU goes: post stored payments and send their messages in this process, profiled.

    .venv/bin/python bench/profile_worker.py [--loans 100000] [--payments 2000] [--kind mix|loan_number|
        msisdn_only|phone_reference|unknown|masked] [--top 40] [--sort tottime|cumtime]

Needs PostgreSQL (``DATABASE_URL`` names the server, default postgres://postgres@127.0.0.1:5432/postgres);
creates the throwaway database ``haven_bench_profile`` and drops it at the end. Redis is not used: the
doorbell and the cache are local to this process, so what is measured is the work of posting itself.
The portfolio and the payloads are those of ``bench/payments.py``. The payments are stored as the
confirmation endpoint stores them, then drained here exactly as a Celery worker drains them
(``transaction_process_next`` until none is due, then ``outbox_deliver_next``), once without and once
with cProfile. Prints CPU ms per payment (this process) and per query, queries per payment, and the
profile's top functions.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.harness import bench_environment, postgres_drop, postgres_recreate, redis_flush  # noqa: E402
from bench.portfolio import SHORT_CODE, Payloads, kind_batch, portfolio_build  # noqa: E402

DATABASE = "haven_bench_profile"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/12"  # flushed at the start and the end


def setup(server_url: str) -> list[int]:
    from urllib.parse import urlsplit

    database_url = urlsplit(server_url)._replace(path=f"/{DATABASE}").geturl()
    env = bench_environment(database_url, "")
    env.update(
        REDIS_URL=REDIS, CELERY_BROKER_URL=REDIS, CELERY_TASK_ALWAYS_EAGER="false", DB_CONN_MAX_AGE="0"
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.bare import BARE_TABLE_DDL
    from core.models import User
    from payments.models import MpesaConfiguration

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(BARE_TABLE_DDL)
    officers = [
        User.objects.create(
            username=f"bench_officer{n}", role=User.Role.OFFICER, is_staff=True, phone=f"+25470000000{n}"
        ).pk
        for n in range(1, 6)
    ]
    User.objects.create(username="bench_admin", role=User.Role.ADMIN, is_staff=True, phone="+254700000009")
    MpesaConfiguration.objects.create(
        name="Bench paybill",
        environment=MpesaConfiguration.Environment.LOCAL,
        business_short_code=SHORT_CODE,
        base_url="http://127.0.0.1:9",
        consumer_key="bench",
        consumer_secret=secrets.token_urlsafe(16),
    )
    return officers


def store(bodies: list[str]) -> None:
    """Store each body as the confirmation endpoint does (without ringing: nothing listens)."""
    from payments.models import MpesaConfiguration
    from payments.parsing import parse_c2b_body
    from payments.services.storing import payment_insert, transaction_values

    config = MpesaConfiguration.objects.get()
    for body in bodies:
        payment = transaction_values(parse_c2b_body(body), config)
        payment.update(source_ip="127.0.0.1", raw_headers={}, raw_body=body)
        payment_insert(payment)


def drain() -> tuple[int, int]:
    """Post every stored payment, then send every queued message, with the units the Celery drain
    tasks run (``payments.tasks``, ``core.tasks``). Returns how many payments and messages."""
    from core.models import OutboxMessage
    from core.tasks import _send_next
    from payments.models import MpesaTransaction
    from payments.tasks import _post_next

    received = MpesaTransaction.objects.filter(status=MpesaTransaction.Status.RECEIVED).count()
    sent_before = OutboxMessage.objects.exclude(status=OutboxMessage.Status.PENDING).count()
    with contextlib.redirect_stdout(io.StringIO()):  # the console SMS backend prints each message
        while _post_next() is not None:
            pass
        while _send_next() is not None:
            pass
    left = MpesaTransaction.objects.filter(status=MpesaTransaction.Status.RECEIVED).count()
    sent = OutboxMessage.objects.exclude(status=OutboxMessage.Status.PENDING).count() - sent_before
    return received - left, sent


def measure(payloads: Payloads, count: int, kind: str, profile: cProfile.Profile | None) -> dict:
    from django.db import connection

    bodies = batch(payloads, count, kind)
    store(bodies)
    counted = []

    def count(execute, sql, params, many, context):
        counted.append(1)
        return execute(sql, params, many, context)

    started_cpu, started = time.process_time(), time.perf_counter()
    if profile is not None:
        profile.enable()
    with connection.execute_wrapper(count):
        payments, messages = drain()
    if profile is not None:
        profile.disable()
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    queries = len(counted)
    from payments.models import MpesaTransaction

    statuses = dict(
        MpesaTransaction.objects.values_list("status").annotate(n=__import__("django").db.models.Count("id"))
    )
    return {
        "payments": payments,
        "messages": messages,
        "cpu_ms_per_payment": cpu * 1000 / max(payments, 1),
        "wall_ms_per_payment": wall * 1000 / max(payments, 1),
        "queries_per_payment": queries / max(payments, 1),
        "statuses": statuses,
    }


def trace(payloads: Payloads, kind: str) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    store(batch(payloads, 1, kind))
    with CaptureQueriesContext(connection) as captured:
        drain()
    for number, query in enumerate(captured.captured_queries, 1):
        print(f"{number:3d} {query['sql'][:400]}")


def batch(payloads: Payloads, count: int, kind: str) -> list[str]:
    if kind == "mix":
        return payloads.batch(count)[0]
    if kind == "masked":
        return kind_batch(payloads, count, payer="masked", usable_account=False)[0]
    return payloads.batch(count, mix=((kind, 1.0),))[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument("--payments", type=int, default=2_000)
    parser.add_argument(
        "--kind",
        default="mix",
        choices=("mix", "loan_number", "msisdn_only", "phone_reference", "unknown", "masked"),
    )
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumtime"))
    parser.add_argument("--dump", metavar="FILE", help="also write the profile to FILE (pstats)")
    parser.add_argument("--trace", action="store_true", help="print the SQL of posting one payment and stop")
    args = parser.parse_args()
    server_url = os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    postgres_recreate(server_url, DATABASE)
    redis_flush(REDIS)
    try:
        officers = setup(server_url)
        payloads = Payloads(seed=20_251_207)
        built = portfolio_build(loans=args.loans, officer_ids=officers)
        payloads.use_portfolio(loans=built["loans"], borrowers=built["borrowers"])
        print(
            f"portfolio: {built['loans']:,} loans, {built['borrowers']:,} borrowers in {built['seconds']:.0f} s"
        )
        measure(payloads, 200, args.kind, None)  # warm up: imports, prepared statements, caches
        if args.trace:
            trace(payloads, args.kind)
            return 0
        plain = measure(payloads, args.payments, args.kind, None)
        profile = cProfile.Profile(time.process_time)  # CPU time: waits for the database are not ours
        profiled = measure(payloads, args.payments, args.kind, profile)
    finally:
        from django.db import connections

        connections.close_all()
        postgres_drop(server_url, DATABASE)
        redis_flush(REDIS)
    for label, figures in (("unprofiled", plain), ("profiled", profiled)):
        print(
            f"{label}: {figures['payments']} payments, {figures['messages']} messages; "
            f"CPU {figures['cpu_ms_per_payment']:.2f} ms/payment, wall {figures['wall_ms_per_payment']:.2f} ms, "
            f"{figures['queries_per_payment']:.1f} queries/payment"
        )
    print(f"statuses at the end: {plain['statuses']}")
    if args.dump:
        profile.dump_stats(args.dump)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
