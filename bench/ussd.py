"""USSD answer latency with 50 concurrent sessions walking the menu, beside the bare endpoint.

    .venv/bin/python bench/ussd.py [--sessions 100] [--rounds 2] [--think-ms 1000,3000] [--json FILE]

Production settings (DEBUG off) on PostgreSQL and Redis: a throwaway database
(``haven_bench_ussd``, dropped afterwards) on the server ``DATABASE_URL`` names (default
``postgres://postgres@127.0.0.1:5432/postgres``) and the Redis database ``REDIS_URL`` names
(default ``redis://127.0.0.1:6379/13``, which it **flushes**). It builds ``--borrowers`` borrowers
with two loans, a PIN and (every other one) a posted payment, starts gunicorn (4 sync workers,
``config.wsgi`` with the bench URLs) and drives ``bench/loadgen.py`` in session mode:
``--concurrency`` sessions at a time (50), each walking one of three routes through the menu (PIN,
my loans with its pages, back and home; recent payments and how to pay; confirm my last payment)
with a person's pause between inputs (``--think-ms``, 1-3 s to read a screen and type, not counted;
sessions start at scattered moments). The bare endpoint
(``bench/bare.py``: one INSERT of the body) gets the same requests with the same pauses right
before or after (alternating), so the two are measured under the same machine load. Each USSD
answer must be a ``CON`` screen (no route ends), so an apology or a lock counts as an error.

It prints p50/p99 of the USSD answers (median over the rounds) against the target (p99 < 100 ms),
the bare endpoint's, and the ratio USSD / bare of each round (median).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    BASE_DIR,
    BIN,
    Processes,
    Refused,
    bench_environment,
    django_migrated,
    free_port,
    postgres_drop,
    postgres_recreate,
    redis_flush,
    run_steps,
    service_urls,
)

DATABASE = "haven_bench_ussd"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
SERVICE_CODE = "*384*123#"
PIN = "4829"
P99_TARGET_MS = 100.0


def routes(pin: str) -> list[list[str]]:
    """Three walks through the menu, as the ``text`` of each request."""
    walks = [
        ["1", "1", "98", "98", "0", "00", "2", "0"],  # my loans: details, split, pay, back, home, payments
        ["2", "0", "3", "0", "4"],  # recent payments, how to pay, confirm my last payment
        ["4", "0", "1", "2", "98", "00"],  # confirm screen, back, the second loan, its split, home
    ]
    texts = []
    for walk in walks:
        inputs = [pin]
        steps = ["", pin]
        for value in walk:
            inputs.append(value)
            steps.append("*".join(inputs))
        texts.append(steps)
    return texts


class UssdBench:
    def __init__(self, args: argparse.Namespace, *, server_url: str, redis_url: str, workdir: Path) -> None:
        self.args = args
        self.server_url = server_url
        self.redis_url = redis_url
        self.workdir = workdir
        self.database_url = urlsplit(server_url)._replace(path=f"/{DATABASE}").geturl()
        self.env = bench_environment(self.database_url, redis_url) | {"USSD_SERVICE_CODES": SERVICE_CODE}
        self.processes = Processes(workdir, self.env)
        self.port = free_port()
        self.phones: list[str] = []
        self.results: dict = {}

    def setup(self) -> None:
        started = time.perf_counter()
        postgres_recreate(self.server_url, DATABASE)
        redis_flush(self.redis_url)
        os.environ.update(self.env)
        django_migrated(bare_table=True)
        self.phones = self._portfolio(self.args.borrowers)
        self.results["setup_s"] = time.perf_counter() - started

    def _portfolio(self, count: int) -> list[str]:
        import datetime
        from decimal import Decimal

        from django.utils import timezone

        from core.models import Borrower, BorrowerPhone, Loan, User
        from payments.models import MpesaConfiguration, MpesaTransaction
        from payments.services import transaction_process
        from ussd.services.pins import pin_set

        officer = User.objects.create(username="bench_officer", role=User.Role.OFFICER, is_staff=True)
        config = MpesaConfiguration.objects.create(
            name="Bench paybill",
            environment=MpesaConfiguration.Environment.LOCAL,
            business_short_code="600984",
            base_url=f"http://127.0.0.1:{self.port}",
        )
        phones = []
        today = timezone.localdate()
        for n in range(count):
            borrower = Borrower.objects.create(
                full_name=f"Bench Borrower {n}",
                loan_officer=officer,
                preferred_language="sw" if n % 3 == 0 else "en",
            )
            phone = f"+2547{10_000_000 + n:08d}"
            BorrowerPhone.objects.create(borrower=borrower, number=phone, is_primary=True)
            for k in range(2):
                amount = Decimal(5000 + 1000 * k + n)
                Loan.objects.create(
                    loan_number=f"LOAN-{1 + 2 * n + k:06d}",
                    borrower=borrower,
                    principal_disbursed=amount,
                    principal=amount,
                    interest=Decimal("250.00"),
                    due_date=today + datetime.timedelta(days=10 + 7 * k),
                    loan_officer=officer,
                )
            pin_set(borrower=borrower, pin=PIN)
            if n % 2 == 0:
                MpesaTransaction.objects.create(
                    trans_id=f"BNC{n:07d}",
                    transaction_type="Pay Bill",
                    trans_time=timezone.now() - datetime.timedelta(hours=2),
                    amount=Decimal("500.00"),
                    business_short_code="600984",
                    bill_reference=f"LOAN-{1 + 2 * n:06d}",
                    msisdn=phone.removeprefix("+"),
                    msisdn_kind="plain",
                    config=config,
                )
                transaction_process(trans_id=f"BNC{n:07d}")
            phones.append(phone)
        return phones

    def start_server(self) -> None:
        import httpx

        command = [str(BIN / "gunicorn"), "config.wsgi", "--workers", "4", "--bind", f"127.0.0.1:{self.port}"]
        self.processes.start("gunicorn", [*command, "--timeout", "30", "--log-level", "warning"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            gunicorn = self.processes.running["gunicorn"]
            if gunicorn.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + self.processes.log_tail("gunicorn"))
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(
            "gunicorn did not answer /healthz in 60 s:\n" + self.processes.log_tail("gunicorn")
        )

    def sessions(self, label: str, count: int) -> list[list[str]]:
        walks = routes(PIN)
        sessions = []
        for index in range(count):
            phone = self.phones[index % len(self.phones)]
            session_id = f"ATUid_bench_{label}_{index}"
            sessions.append(
                [
                    urlencode(
                        {
                            "sessionId": session_id,
                            "serviceCode": SERVICE_CODE,
                            "phoneNumber": phone,
                            "networkCode": "63902",
                            "text": text,
                        }
                    )
                    for text in walks[index % len(walks)]
                ]
            )
        return sessions

    def load(self, name: str, url: str, sessions: list[list[str]], *, ussd: bool) -> dict:
        payloads = self.workdir / f"{name}-payloads.json"
        out = self.workdir / f"{name}-result.json"
        payloads.write_text(json.dumps(sessions), encoding="utf-8")
        command = [sys.executable, str(BASE_DIR / "bench" / "loadgen.py"), "--url", url, "--sessions"]
        command += ["--payloads", str(payloads), "--out", str(out), "--timeout", "10"]
        command += ["--concurrency", str(self.args.concurrency), "--think-ms", self.args.think_ms]
        command += ["--content-type", "application/x-www-form-urlencoded"]
        if ussd:
            command += ["--ok-prefix", "CON "]
        process = self.processes.start(f"loadgen-{name}", command)
        process.wait()
        self.processes.running.pop(f"loadgen-{name}", None)
        if process.returncode != 0 or not out.is_file():
            raise RuntimeError(f"loadgen {name} failed:\n{self.processes.log_tail(f'loadgen-{name}')}")
        return json.loads(out.read_text(encoding="utf-8"))

    def run(self) -> None:
        secret = self.env["AFRICASTALKING_CALLBACK_SECRET"]
        ussd_url = f"http://127.0.0.1:{self.port}/ussd/callback/?{urlencode({'secret': secret})}"
        bare_url = f"http://127.0.0.1:{self.port}/bench/bare/"
        self.load("warmup", ussd_url, self.sessions("warmup", 20), ussd=True)
        rounds = []
        for number in range(self.args.rounds):
            sessions = self.sessions(f"r{number}", self.args.sessions)
            order = ("ussd", "bare") if number % 2 == 0 else ("bare", "ussd")
            measured = {}
            for kind in order:
                url = ussd_url if kind == "ussd" else bare_url
                measured[kind] = self.load(f"{kind}-{number}", url, sessions, ussd=kind == "ussd")
            rounds.append(measured)
        self.results["rounds"] = [
            {
                kind: {k: v for k, v in load.items() if k != "acknowledged_indexes"}
                for kind, load in measured.items()
            }
            for measured in rounds
        ]

    def teardown(self) -> None:
        self.processes.stop_all()
        try:
            from django.db import connections

            connections.close_all()
        except ImportError:
            pass
        postgres_drop(self.server_url, DATABASE)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(results: dict) -> dict:
    rounds = results["rounds"]
    ussd = [r["ussd"] for r in rounds]
    bare = [r["bare"] for r in rounds]
    summary = {
        "ussd_p50_ms": _median([r["latency_ms"]["p50"] for r in ussd]),
        "ussd_p99_ms": _median([r["latency_ms"]["p99"] for r in ussd]),
        "bare_p50_ms": _median([r["latency_ms"]["p50"] for r in bare]),
        "bare_p99_ms": _median([r["latency_ms"]["p99"] for r in bare]),
        "ratio_p50": _median(
            [u["latency_ms"]["p50"] / b["latency_ms"]["p50"] for u, b in zip(ussd, bare, strict=True)]
        ),
        "ratio_p99": _median(
            [u["latency_ms"]["p99"] / b["latency_ms"]["p99"] for u, b in zip(ussd, bare, strict=True)]
        ),
        "requests": sum(r["requests"] for r in ussd),
        "errors": sum(r["errors"] for r in ussd) + sum(r["errors"] for r in bare),
        "error_samples": [s for r in ussd + bare for s in r["error_samples"]][:5],
    }
    summary["p99_ok"] = summary["ussd_p99_ms"] < P99_TARGET_MS and summary["errors"] == 0
    return summary


def print_report(results: dict, args: argparse.Namespace) -> None:
    summary = results["summary"]
    print(
        f"USSD benchmark: {args.concurrency} concurrent sessions, {args.sessions} sessions x {args.rounds} rounds, "
        f"think {args.think_ms} ms, gunicorn 4 sync workers, PostgreSQL + Redis, DEBUG off"
    )
    for number, measured in enumerate(results["rounds"]):
        u, b = measured["ussd"]["latency_ms"], measured["bare"]["latency_ms"]
        print(
            f"  round {number + 1}: USSD p50 {u['p50']:.1f} ms p99 {u['p99']:.1f} ms | "
            f"bare p50 {b['p50']:.1f} ms p99 {b['p99']:.1f} ms | ratio p50 {u['p50'] / b['p50']:.2f} "
            f"p99 {u['p99'] / b['p99']:.2f}"
        )
    print(
        f"USSD answer latency p50 {summary['ussd_p50_ms']:.1f} ms, p99 {summary['ussd_p99_ms']:.1f} ms "
        f"(target p99 < {P99_TARGET_MS:.0f} ms: {'OK' if summary['p99_ok'] else 'MISSED'})"
    )
    print(f"bare endpoint p50 {summary['bare_p50_ms']:.1f} ms, p99 {summary['bare_p99_ms']:.1f} ms")
    print(
        f"ratio USSD / bare (median of rounds): p50 {summary['ratio_p50']:.2f}, p99 {summary['ratio_p99']:.2f}"
    )
    print(f"USSD requests {summary['requests']:,}, errors {summary['errors']}")
    for sample in summary["error_samples"]:
        print(f"  error: {sample}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--borrowers", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=100, help="sessions per load")
    parser.add_argument("--rounds", type=int, default=2, help="USSD / bare pairs")
    parser.add_argument("--concurrency", type=int, default=50, help="sessions at once")
    parser.add_argument(
        "--think-ms",
        default="1000,3000",
        help="MIN,MAX pause between a session's inputs (a person reading and typing)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    try:
        server_url, redis_url = service_urls(DEFAULT_REDIS_URL)
    except Refused as exc:
        print(f"bench/ussd.py: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="haven-bench-ussd-") as workdir:
        bench = UssdBench(args, server_url=server_url, redis_url=redis_url, workdir=Path(workdir))
        done = run_steps(
            bench.setup,
            bench.start_server,
            bench.run,
            teardown=bench.teardown,
            cleanup="stopping the server and dropping the database",
        )
        if not done:
            return 130
    bench.results["summary"] = summarise(bench.results)
    print_report(bench.results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(bench.results, indent=2, default=str), encoding="utf-8")
    return 0 if bench.results["summary"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
