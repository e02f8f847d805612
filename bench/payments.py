"""M-Pesa load benchmark: confirmations acknowledged and payments posted, against real servers.

    .venv/bin/python bench/payments.py [--loans 100000] [--confirmations 3000] [--concurrency 32]
                                       [--scrape | --scrape-only] [--json FILE]
    .venv/bin/python bench/payments.py --scale [--json FILE]
    .venv/bin/python bench/payments.py --posting [--kind-rounds 5] [--kind-payments 400]
                                       [--baseline FILE] [--json FILE]

Needs PostgreSQL and Redis; refuses to run (exit 2) without them. On the PostgreSQL server that
DATABASE_URL names (default postgres://postgres@127.0.0.1:5432/postgres) it creates a throwaway
database ``haven_bench_payments`` and drops it at the end, failure and Ctrl-C included. It uses the
Redis database REDIS_URL names (default redis://127.0.0.1:6379/14) and FLUSHES it at the start and
at the end: never point it at a Redis database that holds anything you want. ``--posting`` runs a
second site beside the first (database ``haven_bench_payments_2``, the next Redis database, 15 by
default, flushed the same way, its own gunicorn and worker) and refuses to start unless PostgreSQL
accepts the connections both hold. No .env file is read, so a development .env cannot send the run
to real Safaricom or SMS services.

What runs: a portfolio built with set-based SQL (``bench/portfolio.py``: about 70% of borrowers
with one loan, the rest two or three, each with a phone and its MSISDN digest, five loan officers
and an admin with phones), gunicorn (``config.wsgi``, 4 threaded workers of gunicorn.conf.py, DEBUG off, the settings of
``bench/settings.py``: the project's plus one bench-only URL), ONE Celery worker (concurrency 2, at
the lowest priority for its process and its scheduler autogroup, see ``harness.autogroup_nice``) and
the load generator (``bench/loadgen.py``) in its own process. Every process gets the same generated
secrets, LOG_LEVEL=WARNING, SMS to the console, and DB_CONN_MAX_AGE=3600 (production: 60) so that no
measurement pays for reconnecting. Metrics are on as in production: METRICS_TOKEN set and
PROMETHEUS_MULTIPROC_DIR a directory of the run, shared by gunicorn and the worker. Payloads have the shape of
``tests/fixtures/daraja/confirmation_hashed.json``: 50% name a loan loosely (``loan 123``), 30% have
an empty account and the payer's hashed MSISDN, 10% give the borrower's phone as the account and
10% come from unknown payers (they end ``unmatched``).

Default run, every figure from the same run:
  (a)  confirmations, closed loop: acknowledgements/s, latency p50/p99, errors;
  (b)  end to end: payments posted/s from the first request until no stored payment of the load is
       ``received`` (polled every 0.2 s), checking that every acknowledged TransID is stored and none
       stays ``received``; processed/unmatched/failed; processing_ms from the rows; queries per
       payment (``transaction_process`` of 50 fresh payments in this process, counted with
       CaptureQueriesContext);
  (a') (b') the same load again with the worker paused (SIGSTOP) while it arrives: the acks then have
       the machine to themselves, and (b') is the backlog drained by the worker alone;
  (c)  validation, open loop at 50 requests/s for 20 s: latency p50/p99 (target p99 < 50 ms);
  (d)  the bare endpoint (``bench/bare.py``: one INSERT of the body) against confirmations, in three
       back-to-back pairs of 1,000 requests with the same bodies (``Bench.ratio_rounds``), both halves
       of a pair with the same background: the confirmations first, which the worker starts posting,
       then the bare load while it is still posting them (its backlog over each bare load is shown);
       acks/s of each and the median of the three ratios (target >= 0.7). (d') the same with the
       worker stopped for both halves: the web path alone. Pairs, because this machine's speed drifts
       by a quarter within a run; the same background in both halves, because on two cores the
       worker's posting (and the database work it causes, at normal priority) takes from whichever
       load runs beside it.
  (f)  with ``--scrape`` (``make bench``) or ``--scrape-only`` (setup, warm-up and (f) alone): the
       ratio of (d) with /metrics scraped every second and without, the worker posting, measured
       inside three long confirmation loads cut into 1-second windows alternately without and with
       scraping (each window with scraping against the two around it: loads measured apart differ
       by more than scraping could change them); the ratio to a bare load for each state, the mean
       change (target: under 5% either way), the scrapes' latency, the CPU one scrape costs, and
       a check that the scraped counter of acknowledged confirmations grew by exactly the
       acknowledgements of each scraped load (gunicorn's four workers add up: multiprocess mode).
``--posting`` runs (g): each payer kind (hashed, masked, plain number; a loan reference or no
account) drained by the worker alone at 10,000 and at 1,000,000 loans, the two portfolios in two
databases with their own servers, each kind measured at both sizes back to back in each round
(``Bench.payer_kinds``), and the median of the rounds' 1M/10k ratios of mean processing_ms (target
<= 1.2); then, at 1,000,000 loans, (b) end to end with the worker's CPU per payment (target 8 ms)
and queries per payment, and (h) a burst of matched and one of unmatched payments drained by the
worker (target: unmatched at least as fast). ``--baseline FILE`` compares (b) with an earlier run's.
``--scale`` runs (a) and (b) on a 10,000-loan and then a 1,000,000-loan portfolio, then (e) a steady
50 confirmations/s for 20 s while the worker posts them, and compares the sizes: steady ack latency
p50 and p99, mean processing_ms of the steady payments, and queries per payment (targets: ratio
<= 1.2). A saturating burst is shown too, but its latency measures CPU contention on the machine more
than anything the portfolio's size does. Each portfolio is vacuumed and checkpointed after it is built
so autovacuum does not run in the middle of a measurement.

"CPU ms per ack/payment" splits the CPU the machine used during a phase: gunicorn, the worker,
PostgreSQL backends of the bench database, Redis, the load generator, and ``other`` (the rest of the
machine: other people's processes on a shared machine, and connections opened and closed during the
phase, which /proc cannot show once they have exited).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on sys.path, where this very file would shadow the
# payments app: the project root takes its place.
if sys.path and Path(sys.path[0]).resolve() == BASE_DIR / "bench":
    sys.path[0] = str(BASE_DIR)

from bench.harness import (  # noqa: E402
    BENCH_DATABASE,
    BIN,
    Processes,
    Refused,
    autogroup_nice,
    bench_environment,
    cpu_snapshot,
    free_port,
    postgres_drop,
    postgres_free_connections,
    postgres_recreate,
    redis_flush,
    require_services,
)
from bench.portfolio import PAYER_KINDS, SHORT_CODE, Payloads, kind_batch, portfolio_build, unknown_batch  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
SCALE_SIZES = (10_000, 1_000_000)
E2E_TIMEOUT_S = 600
POLL_S = 0.2
QUERY_SAMPLE = 50
STATUSES = ("received", "processed", "unmatched", "failed", "reversed")

VALIDATION_P99_TARGET_MS = 50.0
BARE_RATIO_TARGET = 0.7
SCRAPE_CHANGE_TARGET = 0.05
# Long confirmation loads of (f), each cut into windows with and without scraping.
SCRAPE_LOADS = 3
RATIO_ROUNDS = 3
SCALE_RATIO_TARGET = 1.2
WORKER_CPU_TARGET_MS = 8.0
POSTING_GAIN_TARGET = 2.0
KIND_PAYMENTS = 400
# Rounds of all six payer kinds at each portfolio size; each kind's figure is its median round.
KIND_ROUNDS = 5
BURST = 10_000
BUILD_1M_TARGET_S = 120.0
WORKER_NICE = 19
GUNICORN_WORKERS = 4
GUNICORN_THREADS = 12  # gunicorn.conf.py's default
# The database connections of one site besides gunicorn's threads: the worker's pool of 2, its
# parent, this process.
SITE_CONNECTIONS = 2 + 1 + 1


# --- the run --------------------------------------------------------------------------------------


@dataclass
class Site:
    """A database with its own gunicorn, Celery worker and Redis database. Every run has one;
    ``--posting`` runs two side by side, one per portfolio size, and measures them in turns."""

    database: str
    database_url: str
    redis_url: str
    env: dict[str, str]
    processes: Processes
    port: int = 0
    created: bool = False
    config: Any = None
    officer_ids: list[int] = field(default_factory=list)
    built: dict = field(default_factory=dict)


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        *,
        server_url: str,
        redis_url: str,
        workdir: Path,
        second_redis_url: str | None = None,
    ) -> None:
        self.args = args
        self.server_url = server_url
        self.workdir = workdir
        # One set of secrets for every process of the run: this process writes the paybills'
        # encrypted credentials into each site's database, and each site's servers read them.
        self.base_env = bench_environment("", "")
        # Metrics as in production: counted by every process into one directory, scraped with a token.
        self.metrics_token = secrets.token_urlsafe(32)
        self.base_env["METRICS_TOKEN"] = self.metrics_token
        self.sites = [self._site(BENCH_DATABASE, redis_url, threads=GUNICORN_THREADS)]
        if second_redis_url:
            # The second site's gunicorn with threads enough for the load generator's senders: with
            # the first site's 4 x 12 persistent connections, 4 x 12 more would pass PostgreSQL's
            # default max_connections (100).
            threads = -(-args.concurrency // GUNICORN_WORKERS)
            self.sites.append(self._site(f"{BENCH_DATABASE}_2", second_redis_url, threads=threads))
        self.site = self.sites[0]
        self.payloads = Payloads(seed=20_250_601)
        self.results: dict = {}

    def _site(self, database: str, redis_url: str, *, threads: int) -> Site:
        database_url = urlsplit(self.server_url)._replace(path=f"/{database}").geturl()
        workdir = self.workdir / database
        metrics_dir = workdir / "prometheus-multiproc"
        metrics_dir.mkdir(parents=True)
        env = {
            **self.base_env,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "GUNICORN_THREADS": str(threads),
        }
        return Site(database, database_url, redis_url, env, Processes(workdir, env))

    # The site being measured: every tool below works on it.

    @property
    def processes(self) -> Processes:
        return self.site.processes

    @property
    def redis_url(self) -> str:
        return self.site.redis_url

    @property
    def port(self) -> int:
        return self.site.port

    @property
    def config(self) -> Any:
        return self.site.config

    def use(self, site: Site) -> None:
        """Measure ``site`` from now on: this process's database connection moves to its database
        and the payloads sample its portfolio."""
        from django.contrib.contenttypes.models import ContentType
        from django.db import connection

        if connection.settings_dict["NAME"] != site.database:
            connection.close()
            connection.settings_dict["NAME"] = site.database
            ContentType.objects.clear_cache()
        self.site = site
        if site.built:
            self.payloads.use_portfolio(loans=site.built["loans"], borrowers=site.built["borrowers"])

    # --- setup

    def setup(self) -> None:
        started = time.perf_counter()
        os.environ.update(self.sites[0].env)
        import django

        django.setup()
        for site in self.sites:
            self._set_up(site)
        self.use(self.sites[0])
        self.results["setup_s"] = time.perf_counter() - started

    def _set_up(self, site: Site) -> None:
        from django.core.management import call_command
        from django.db import connection

        from bench.bare import BARE_TABLE_DDL
        from core.models import User
        from payments.models import MpesaConfiguration

        postgres_recreate(self.server_url, site.database)
        site.created = True
        redis_flush(site.redis_url)
        self.use(site)
        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute(BARE_TABLE_DDL)
        # Officers and an admin with phones, so that payments queue the notes and alerts they would
        # in production (each one an outbox row and a Celery task).
        site.officer_ids = [
            User.objects.create(
                username=f"bench_officer{n}", role=User.Role.OFFICER, is_staff=True, phone=f"+25470000000{n}"
            ).pk
            for n in range(1, 6)
        ]
        User.objects.create(
            username="bench_admin", role=User.Role.ADMIN, is_staff=True, phone="+254700000009"
        )
        site.port = free_port()
        site.config = MpesaConfiguration.objects.create(
            name="Bench paybill",
            environment=MpesaConfiguration.Environment.LOCAL,
            business_short_code=SHORT_CODE,
            base_url=f"http://127.0.0.1:{site.port}",
            consumer_key="bench",
            consumer_secret=secrets.token_urlsafe(16),
        )

    def portfolio(self, loans: int) -> dict:
        """Build a portfolio of ``loans`` in the site's database, in place of the one it had."""
        self.site.built = portfolio_build(loans=loans, officer_ids=self.site.officer_ids)
        self.use(self.site)
        return self.site.built

    def start_servers(self) -> None:
        import httpx

        started = time.perf_counter()
        # The repository's gunicorn.conf.py (threaded workers), as deploy/Procfile runs it.
        gunicorn = [
            str(BIN / "gunicorn"),
            "config.wsgi",
            "--config",
            str(BASE_DIR / "gunicorn.conf.py"),
            "--workers",
            str(GUNICORN_WORKERS),
            "--bind",
            f"127.0.0.1:{self.port}",
        ]
        self.processes.start("gunicorn", [*gunicorn, "--timeout", "30", "--log-level", "warning"])
        # The worker runs at a lower priority, as we advise for one machine (README, Production):
        # Safaricom waits for acknowledgements; posting can trail them by seconds.
        worker = [
            "nice",
            "-n",
            str(WORKER_NICE),
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
        ]
        started_worker = self.processes.start(
            "worker", [*worker, "--without-mingle", "--without-gossip", "--hostname", "bench-payments@%h"]
        )
        self.results["worker_autogroup_nice"] = autogroup_nice(started_worker.pid, WORKER_NICE)
        deadline = time.monotonic() + 60
        healthy = False
        while time.monotonic() < deadline and not healthy:
            self._check_alive()
            try:
                healthy = httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        if not healthy:
            raise RuntimeError(
                "gunicorn did not answer /healthz in 60 s:\n" + self.processes.log_tail("gunicorn")
            )
        while not _ping(self.redis_url):
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "the Celery worker did not answer in 60 s:\n" + self.processes.log_tail("worker")
                )
        self.results["servers_s"] = time.perf_counter() - started

    def _check_alive(self) -> None:
        for name in ("gunicorn", "worker"):
            process = self.processes.running.get(name)
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}:\n{self.processes.log_tail(name)}"
                )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, kind: str) -> str:
        if kind == "bare":
            return f"{self.base_url}/bench/bare/"
        return self.config.callback_url(kind)

    # --- tools

    def start_load(
        self, name: str, url: str, bodies: list[str], *, rate: float | None = None, timeline: bool = False
    ) -> tuple[subprocess.Popen, Path]:
        """Start the load generator in its own process; returns it and the file its result goes to."""
        payloads = self.workdir / f"{name}-payloads.json"
        out = self.workdir / f"{name}-result.json"
        payloads.write_text(json.dumps(bodies), encoding="utf-8")
        command = [sys.executable, str(BASE_DIR / "bench" / "loadgen.py"), "--url", url]
        command += ["--payloads", str(payloads), "--out", str(out), "--timeout", "10"]
        command += ["--concurrency", str(self.args.concurrency), "--client", self.args.client]
        if rate is not None:
            command += ["--rate", str(rate)]
        if timeline:
            command.append("--timeline")
        return self.processes.start(f"loadgen-{name}", command), out

    def finish_load(self, name: str, process: subprocess.Popen, out: Path) -> dict:
        process.wait()
        self.processes.running.pop(f"loadgen-{name}", None)
        if process.returncode != 0 or not out.is_file():
            raise RuntimeError(f"loadgen {name} failed:\n{self.processes.log_tail(f'loadgen-{name}')}")
        return json.loads(out.read_text(encoding="utf-8"))

    def load(
        self, name: str, url: str, bodies: list[str], *, rate: float | None = None, timeline: bool = False
    ) -> dict:
        return self.finish_load(name, *self.start_load(name, url, bodies, rate=rate, timeline=timeline))

    def cpu(self) -> Counter:
        groups = {name: self.processes.running[name].pid for name in ("gunicorn", "worker")}
        return cpu_snapshot(groups=groups, database=self.site.database) + Counter(
            {"bench": time.process_time()}
        )

    def worker_signal(self, sig: signal.Signals) -> None:
        os.killpg(self.processes.running["worker"].pid, sig)

    def warm_up(self) -> None:
        bodies, _, _ = self.payloads.batch(24)
        for kind in ("validation", "confirmation", "bare"):
            self.load(f"warmup-{kind}", self.url(kind), bodies)
        self.wait_quiet()

    def wait_quiet(self, timeout: float = 300) -> float:
        """Wait until the worker has nothing left: no payment received, no message to deliver, an empty
        queue. Returns the seconds waited."""
        import redis

        from core.models import OutboxMessage
        from payments.models import MpesaTransaction

        broker = redis.Redis.from_url(self.redis_url)
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            busy = (
                broker.llen("celery")
                or MpesaTransaction.objects.filter(status=MpesaTransaction.Status.RECEIVED).exists()
                or OutboxMessage.objects.filter(
                    status__in=[OutboxMessage.Status.PENDING, OutboxMessage.Status.SENDING]
                ).exists()
            )
            if not busy:
                return time.monotonic() - started
            time.sleep(0.5)
        print(f"warning: the worker was still busy after {timeout:.0f} s", file=sys.stderr)
        return time.monotonic() - started

    # --- measurements

    def confirmations(
        self,
        label: str,
        *,
        worker_paused: bool = False,
        batch: tuple[list[str], list[str], Counter] | None = None,
    ) -> dict:
        """(a) acknowledgements and (b) payments posted, from one load of confirmations.

        End to end runs from the first request sent until no stored payment of this load is
        ``received``. With ``worker_paused`` the worker is stopped (SIGSTOP) while the confirmations
        arrive: the acknowledgements then have the machine to themselves, and (b) becomes the time to
        drain the backlog, counted from the moment the worker resumes. ``batch``: the bodies, their
        TransIDs and their mix, instead of ``--confirmations`` bodies of the default mix."""
        from django.db import connection
        from django.db.models import Max

        from bench.loadgen import percentile
        from payments.models import MpesaTransaction

        bodies, trans_ids, mix = batch or self.payloads.batch(self.args.confirmations)
        baseline = MpesaTransaction.objects.aggregate(last=Max("id"))["last"] or 0
        name = f"confirmations-{label}"
        if worker_paused:
            self.worker_signal(signal.SIGSTOP)
        cpu_before = self.cpu()
        process, out = self.start_load(name, self.url("confirmation"), bodies)
        cpu_acks = None
        clock_from = None  # when the worker resumed, for a paused run
        polled_at = time.time()
        deadline = polled_at + E2E_TIMEOUT_S
        done_at = None
        while polled_at < deadline:
            time.sleep(POLL_S)
            loadgen_done = process.poll() is not None
            if loadgen_done and cpu_acks is None:
                cpu_acks = self.cpu() - cpu_before
                if worker_paused:
                    self.worker_signal(signal.SIGCONT)
                    clock_from = time.time()
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM payments_mpesatransaction WHERE id > %s AND status = 'received'",
                    [baseline],
                )
                waiting = cursor.fetchone()[0]
            polled_at = time.time()
            # An acknowledgement is sent after the commit: once the generator is done, every stored row
            # of this load is visible here.
            if loadgen_done and waiting == 0:
                done_at = polled_at
                break
        ack = self.finish_load(name, process, out)
        cpu_end = self.cpu()

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT trans_id, status, processing_ms FROM payments_mpesatransaction WHERE id > %s",
                [baseline],
            )
            rows = cursor.fetchall()
        stored = {row[0] for row in rows}
        statuses = Counter(row[1] for row in rows)
        acknowledged = {trans_ids[index] for index in ack.pop("acknowledged_indexes")}
        timings = sorted(row[2] for row in rows if row[2] is not None)
        finished = sum(count for status, count in statuses.items() if status != "received")
        seconds = (done_at or time.time()) - (clock_from or ack["first_sent_at"])
        # A paused run's processing is the drain alone; otherwise it shares the machine with the acks.
        cpu_processing = cpu_end - (cpu_before + (cpu_acks or Counter()) if worker_paused else cpu_before)
        return {
            "payload_mix": dict(mix),
            "worker_paused": worker_paused,
            "ack": ack,
            "cpu_ms_per_ack": _cpu_per(
                cpu_acks or Counter(), ack["acknowledged"], loadgen_cpu_s=ack["cpu_s"]
            ),
            "end_to_end": {
                "completed": done_at is not None,
                "seconds": seconds,
                "after_last_ack_s": (done_at or time.time()) - ack["first_sent_at"] - ack["wall_s"],
                "payments_per_s": finished / seconds if seconds > 0 else 0.0,
                "stored": len(stored),
                "acknowledged_distinct": len(acknowledged),
                "lost": len(acknowledged - stored),
                "stored_not_acknowledged": len(stored - acknowledged),
                "statuses": {status: statuses.get(status, 0) for status in STATUSES},
                "processing_ms_mean": sum(timings) / len(timings) if timings else None,
                "processing_ms_p50": percentile(timings, 0.5),
                "processing_ms_p99": percentile(timings, 0.99),
                "cpu_ms_per_payment": _cpu_per(
                    cpu_processing, finished, loadgen_cpu_s=0.0 if worker_paused else ack["cpu_s"]
                ),
            },
        }

    def queries_per_payment(self) -> dict:
        """Process ``QUERY_SAMPLE`` freshly stored payments in this process and count their queries, the
        worker paused meanwhile (it would otherwise take some of them first, leaving a count of a
        payment already settled)."""
        self.worker_signal(signal.SIGSTOP)
        try:
            return self._count_queries()
        finally:
            self.worker_signal(signal.SIGCONT)

    def _count_queries(self) -> dict:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from payments.parsing import parse_c2b_body
        from payments.services import transaction_process
        from payments.services.storing import new_transaction

        bodies, trans_ids, _ = self.payloads.batch(QUERY_SAMPLE)
        for body in bodies:
            payload = parse_c2b_body(body)
            # Stored directly, not through the callback, which would also hand them to the worker.
            new_transaction(payload, self.config).save(force_insert=True)
        counts, statuses = [], Counter()
        started = time.perf_counter()
        for trans_id in trans_ids:
            with CaptureQueriesContext(connection) as captured:
                tx = transaction_process(trans_id=trans_id)
            counts.append(len(captured.captured_queries))
            statuses[tx.status] += 1
        return {
            "payments": len(counts),
            "mean": sum(counts) / len(counts),
            "min": min(counts),
            "max": max(counts),
            "ms_per_payment": (time.perf_counter() - started) * 1000 / len(counts),
            "statuses": dict(statuses),
        }

    def validation(self) -> dict:
        count = round(self.args.validation_rate * self.args.validation_seconds)
        bodies, _, _ = self.payloads.batch(count)
        result = self.load("validation", self.url("validation"), bodies, rate=self.args.validation_rate)
        result.pop("acknowledged_indexes")
        return result

    def steady_confirmations(self) -> dict:
        """Confirmations at a steady rate while the worker posts them: the latency a payment sees in
        normal running. A saturating burst measures mostly CPU contention on this shared machine,
        which varies from run to run more than any effect of the portfolio's size."""
        from payments.models import MpesaTransaction

        count = round(self.args.steady_rate * self.args.steady_seconds)
        bodies, trans_ids, _ = self.payloads.batch(count)
        result = self.load("steady", self.url("confirmation"), bodies, rate=self.args.steady_rate)
        result.pop("acknowledged_indexes")
        self.wait_quiet()
        timings = sorted(
            MpesaTransaction.objects.filter(trans_id__in=trans_ids, processing_ms__isnull=False).values_list(
                "processing_ms", flat=True
            )
        )
        result["processing_ms_mean"] = sum(timings) / len(timings) if timings else None
        result["processing_ms_p99"] = timings[int(len(timings) * 0.99) - 1] if timings else None
        return result

    def ratio_rounds(self, *, worker_posting: bool) -> dict:
        """(d) the bare endpoint against confirmations, in ``RATIO_ROUNDS`` back-to-back pairs with the
        same fresh bodies, both halves of a pair sharing the machine with the same background work.
        With ``worker_posting`` the worker runs throughout and each round sends the confirmations
        first, then the bare load: the bare load arrives while the worker is still posting the
        confirmations just acknowledged (the backlog it had, at the start and the end of each bare
        load, is reported to show it). Without, the worker is stopped for both halves until the last
        round is done. The ratio is the median of the rounds'."""
        label = "posting" if worker_posting else "paused"
        per_round = max(1, self.args.confirmations // RATIO_ROUNDS)
        order = ("confirmation", "bare") if worker_posting else ("bare", "confirmation")
        rounds = []
        used = {"bare": Counter(), "confirmation": Counter()}
        acks = {"bare": 0, "confirmation": 0}
        loadgen_cpu = {"bare": 0.0, "confirmation": 0.0}
        self.worker_signal(signal.SIGCONT if worker_posting else signal.SIGSTOP)
        for number in range(1, RATIO_ROUNDS + 1):
            bodies, _, _ = self.payloads.batch(per_round)
            rate = {}
            errors = 0
            backlog = None
            for kind in order:
                waiting_before = self.received_backlog()
                cpu_before = self.cpu()
                result = self.load(f"ratio-{label}-{number}-{kind}", self.url(kind), bodies)
                used[kind] += self.cpu() - cpu_before
                if kind == "bare" and worker_posting:
                    backlog = (waiting_before, self.received_backlog())
                acks[kind] += result["acknowledged"]
                loadgen_cpu[kind] += result["cpu_s"]
                rate[kind] = result["acks_per_s"]
                errors += result["errors"]
            rounds.append(
                {
                    "bare_acks_per_s": rate["bare"],
                    "acks_per_s": rate["confirmation"],
                    "ratio": rate["confirmation"] / (rate["bare"] or float("nan")),
                    "errors": errors,
                    "backlog_during_bare": backlog,
                }
            )
        self.worker_signal(signal.SIGCONT)
        self.wait_quiet()
        return {
            "worker_posting": worker_posting,
            "per_round": per_round,
            "rounds": rounds,
            "ratio_median": statistics.median(r["ratio"] for r in rounds),
            "errors": sum(r["errors"] for r in rounds),
            "cpu_ms_per_ack": {
                kind: _cpu_per(used[kind], acks[kind], loadgen_cpu_s=loadgen_cpu[kind]) for kind in used
            },
        }

    def scrape_rounds(self) -> dict:
        """(f) the ratio of (d) with /metrics scraped every second and without, the worker posting.

        Loads measured apart differ here by more than scraping could change them (other processes
        share the machine), so both states are measured inside the same loads: ``SCRAPE_LOADS``
        long confirmation loads, cut into 1-second windows alternately without and with scraping
        (one scrape at the start of each: a scrape every second while scraping). Each window with scraping is compared with the mean of the two
        windows without around it; the change is the mean of those comparisons. The ratio to the
        bare endpoint (one bare load just before) is shown for each state. Around each load the
        counter of acknowledged confirmations is read: it must grow by exactly the load's
        acknowledgements, summed over gunicorn's workers (multiprocess mode). Last, the CPU one
        scrape costs (gunicorn and PostgreSQL), from 20 scrapes with no load and the worker stopped
        (its backlog is left: (f) comes last)."""
        from bench.loadgen import percentile
        from bench.scraper import Scraper, counter_total, scrape_text, window_changes

        metrics_url = f"{self.base_url}/metrics"

        def acknowledged_so_far() -> float:
            text = scrape_text(metrics_url, self.metrics_token)
            return counter_total(text, "haven_callbacks_total", kind="confirmation", outcome="accepted")

        self.worker_signal(signal.SIGCONT)
        per_load = 2 * self.args.confirmations
        bare = self.load("scrape-bare", self.url("bare"), self.payloads.batch(self.args.confirmations)[0])
        windows, loads, counted, scrape_ms, scrape_errors = [], [], [], [], 0
        for number in range(1, SCRAPE_LOADS + 1):
            bodies = self.payloads.batch(per_load)[0]
            before = acknowledged_so_far()
            with Scraper(metrics_url, self.metrics_token, window=1.0, every=1.0) as scraper:
                result = self.load(f"scrape-{number}", self.url("confirmation"), bodies, timeline=True)
            counted.append((round(acknowledged_so_far() - before), result["acknowledged"]))
            windows += window_changes(scraper.windows, result.pop("acknowledged_at"))
            scrape_ms += scraper.latencies_ms
            scrape_errors += scraper.errors
            loads.append({key: result[key] for key in ("acknowledged", "errors", "acks_per_s", "wall_s")})

        # The worker is stopped rather than waited for: posting the loads' backlog takes minutes, and
        # nothing after (f) needs the payments posted (the database is dropped).
        self.worker_signal(signal.SIGSTOP)
        time.sleep(1.0)
        idle_scrapes = 20
        cpu_before = self.cpu()
        for _ in range(idle_scrapes):
            scrape_text(metrics_url, self.metrics_token)
        used = self.cpu() - cpu_before
        self.worker_signal(signal.SIGCONT)
        with_scraping = statistics.mean(w["with"] for w in windows) if windows else float("nan")
        without = statistics.mean(w["without"] for w in windows) if windows else float("nan")
        bare_rate = bare["acks_per_s"] or float("nan")
        return {
            "per_load": per_load,
            "loads": loads,
            "windows": windows,
            "bare_acks_per_s": bare["acks_per_s"],
            "acks_per_s_without": without,
            "acks_per_s_with": with_scraping,
            "ratio_without": without / bare_rate,
            "ratio_with": with_scraping / bare_rate,
            "change": statistics.mean(w["change"] for w in windows) if windows else float("nan"),
            "errors": bare["errors"] + sum(load["errors"] for load in loads),
            "scrapes": len(scrape_ms),
            "scrape_errors": scrape_errors,
            "scrape_ms_p50": percentile(scrape_ms, 0.5),
            "scrape_ms_max": max(scrape_ms, default=None),
            "counted_vs_acknowledged": counted,
            "cpu_ms_per_scrape": {
                role: used[role] * 1000 / idle_scrapes for role in ("gunicorn", "postgres") if role in used
            },
        }

    def received_backlog(self) -> int:
        """Payments stored and not yet posted: the worker's backlog."""
        from payments.models import MpesaTransaction

        return MpesaTransaction.objects.filter(status=MpesaTransaction.Status.RECEIVED).count()

    # --- the two runs

    def run_default(self) -> None:
        self.results["portfolio"] = self.portfolio(self.args.loans)
        self.start_servers()
        self.warm_up()
        self.results["confirmations"] = self.confirmations("default")
        self.wait_quiet()
        self.results["confirmations_worker_paused"] = self.confirmations("paused", worker_paused=True)
        self.wait_quiet()
        self.results["queries_per_payment"] = self.queries_per_payment()
        self.wait_quiet()
        self.results["validation"] = self.validation()
        self.wait_quiet()
        # The ratios pair loads sent back to back, several times: this machine's speed drifts by a
        # quarter within a run, and one bare load measured apart from the confirmations made the
        # ratio swing by as much.
        self.results["ratio"] = self.ratio_rounds(worker_posting=True)
        self.results["ratio_worker_paused"] = self.ratio_rounds(worker_posting=False)
        if self.args.scrape:
            self.results["scrape"] = self.scrape_rounds()

    def run_scrape_only(self) -> None:
        self.results["portfolio"] = self.portfolio(self.args.loans)
        self.start_servers()
        self.warm_up()
        self.results["scrape"] = self.scrape_rounds()

    def run_scale(self) -> None:
        self.results["scale"] = {}
        for index, loans in enumerate(self.args.scale_sizes):
            built = self.portfolio(loans)
            if index == 0:
                self.start_servers()
                self.warm_up()
            measured = self.confirmations(f"scale-{loans}")
            measured["portfolio"] = built
            self.wait_quiet()
            measured["steady"] = self.steady_confirmations()
            self.wait_quiet()
            measured["queries_per_payment"] = self.queries_per_payment()
            self.wait_quiet()
            self.results["scale"][str(loans)] = measured

    def run_posting(self) -> None:
        """(g) each payer kind drained at each portfolio size, the two sizes in two databases with
        their own servers, measured in turns; then, at the largest, (b) end to end with the worker
        posting, the queries per payment, and (h) a burst of matched and one of unmatched payments
        drained by the worker."""
        large_site, small_site = self.sites
        small, large = self.args.scale_sizes[0], self.args.scale_sizes[-1]
        self.results["posting"] = {}
        for site, loans in ((small_site, small), (large_site, large)):
            self.use(site)
            self.results["posting"][str(loans)] = {"portfolio": self.portfolio(loans)}
            self.start_servers()
            self.warm_up()
        kinds = self.payer_kinds({small: small_site, large: large_site})
        for loans, measured in kinds.items():
            self.results["posting"][str(loans)]["kinds"] = measured
        self.use(large_site)
        measured = self.results["posting"][str(large)]
        measured["end_to_end"] = self.confirmations(f"posting-{large}")
        self.wait_quiet()
        measured["queries_per_payment"] = self.queries_per_payment()
        self.wait_quiet()
        bodies, trans_ids = kind_batch(self.payloads, self.args.burst, payer="hashed", usable_account=True)
        measured["matched_burst"] = self.confirmations(
            f"burst-matched-{large}",
            worker_paused=True,
            batch=(bodies, trans_ids, Counter({"matched": len(bodies)})),
        )
        self.wait_quiet()
        bodies, trans_ids = unknown_batch(self.payloads, self.args.burst)
        measured["unmatched_burst"] = self.confirmations(
            f"burst-unmatched-{large}",
            worker_paused=True,
            batch=(bodies, trans_ids, Counter({"unmatched": len(bodies)})),
        )
        self.wait_quiet()

    def payer_kinds(self, sites: dict[int, Site]) -> dict[int, dict]:
        """(g) ``--kind-payments`` confirmations of each payer kind, each drained by its site's worker
        alone, in ``--kind-rounds`` rounds. In a round each kind is measured at every size back to
        back (the order alternating from kind to kind and round to round), so the two figures of a
        pair share the machine's speed of that minute: this machine's speed drifts by more than the
        20% (g) allows over the minutes that separate one size's measurements from the other's.
        A kind's figure at a size is its median round; its ratio, the median of its rounds' ratios.
        A median, because a few seconds of the database's background work (a checkpoint,
        autovacuum) can stall one drain's payments by a hundred milliseconds each, which a mean
        over one drain carries whole."""
        for loans, site in sites.items():
            # A load of the default mix first, not measured: the first payments after a build read
            # pages that no payment has brought into PostgreSQL's buffers yet.
            self.use(site)
            self.load(
                f"settle-{loans}", self.url("confirmation"), self.payloads.batch(self.args.kind_payments)[0]
            )
            self.wait_quiet()
        kinds = [(payer, usable) for payer in PAYER_KINDS for usable in (True, False)]
        rounds: dict[int, dict[str, list[dict]]] = {loans: {} for loans in sites}
        for number in range(self.args.kind_rounds):
            for index, (payer, usable_account) in enumerate(kinds):
                kind = f"{payer}, {'loan reference' if usable_account else 'no account'}"
                order = list(sites.items())
                if (number + index) % 2:
                    order.reverse()
                for loans, site in order:
                    self.use(site)
                    bodies, trans_ids = kind_batch(
                        self.payloads, self.args.kind_payments, payer=payer, usable_account=usable_account
                    )
                    measured = self.confirmations(
                        f"kind-{loans}-{number}-{payer}-{usable_account}",
                        worker_paused=True,
                        batch=(bodies, trans_ids, Counter({kind: len(bodies)})),
                    )
                    measured["measured_first"] = loans == order[0][0]
                    rounds[loans].setdefault(kind, []).append(measured)
                    self.wait_quiet()
        figures: dict[int, dict] = {}
        for loans, by_kind in rounds.items():
            figures[loans] = {}
            for kind, measured in by_kind.items():
                means = [m["end_to_end"]["processing_ms_mean"] for m in measured]
                ordered = sorted(range(len(measured)), key=lambda index: means[index] or 0.0)
                median = measured[ordered[(len(ordered) - 1) // 2]]
                figures[loans][kind] = {**median, "round_means": means}
        return figures

    def teardown(self) -> None:
        for site in self.sites:
            site.processes.stop_all()
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        for site in self.sites:
            if site.created:
                postgres_drop(self.server_url, site.database)
            redis_flush(site.redis_url)


def _ping(broker_url: str) -> bool:
    """Whether a Celery worker answers on ``broker_url``. Celery prefers CELERY_BROKER_URL from the
    environment to any broker it is given (this process's names the first site's), so it is set
    for the ping."""
    from unittest import mock

    from celery import Celery

    with mock.patch.dict(os.environ, CELERY_BROKER_URL=broker_url):
        return bool(Celery(set_as_current=False).control.ping(timeout=1.0))


def _cpu_per(used: Counter, count: int, *, loadgen_cpu_s: float = 0.0) -> dict[str, float]:
    """CPU milliseconds per item (acknowledgement, payment) by role. ``other`` is what the rest of the
    machine used meanwhile: other people's processes on a shared machine show up there."""
    roles = Counter({role: seconds for role, seconds in used.items() if role != "machine"})
    roles["loadgen"] = loadgen_cpu_s
    if "machine" in used:
        roles["other"] = max(0.0, used["machine"] - sum(roles.values()))
    per = {role: seconds * 1000 / max(count, 1) for role, seconds in roles.items() if seconds > 0}
    return dict(sorted(per.items(), key=lambda item: -item[1]))


# --- report ---------------------------------------------------------------------------------------

Row = tuple[str, str, str, str]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _cpu(per: dict[str, float]) -> str:
    return ", ".join(f"{role} {ms:.1f}" for role, ms in per.items() if ms >= 0.05)


def _ack_rows(prefix: str, load: dict, suffix: str = "") -> list[Row]:
    latency = load["latency_ms"]
    rows = [
        (f"{prefix} acks/s{suffix}", f"{load['acks_per_s']:,.1f}", "", ""),
        (f"{prefix} latency p50 / p99{suffix}", f"{_ms(latency['p50'])} / {_ms(latency['p99'])}", "", ""),
        (
            f"{prefix} errors{suffix}",
            f"{load['errors']} {load['error_kinds'] or ''}".strip(),
            "0",
            _verdict(load["errors"] == 0),
        ),
    ]
    if "cpu_ms_per_ack" in load:
        rows.append((f"{prefix} CPU ms per ack{suffix}", _cpu(load["cpu_ms_per_ack"]), "", ""))
    return rows


def _confirmation_rows(measured: dict, suffix: str = "", *, paused: bool = False) -> list[Row]:
    ack, e2e = dict(measured["ack"], cpu_ms_per_ack=measured["cpu_ms_per_ack"]), measured["end_to_end"]
    statuses = e2e["statuses"]
    nothing_lost = e2e["lost"] == 0 and statuses["received"] == 0 and e2e["completed"]
    a, b = ("(a')", "(b')") if paused else ("(a)", "(b)")
    what = "confirmation, worker paused" if paused else "confirmation"
    posted = "backlog drained, payments/s" if paused else "payments posted/s, end to end"
    return [
        *_ack_rows(f"{a} {what}", ack, suffix),
        (f"{b} {posted}{suffix}", f"{e2e['payments_per_s']:,.1f} ({e2e['seconds']:.1f} s)", "", ""),
        (
            f"{b} processed / unmatched / failed{suffix}",
            f"{statuses['processed']} / {statuses['unmatched']} / {statuses['failed']}",
            "",
            "",
        ),
        (
            f"{b} acknowledged = stored, none received{suffix}",
            f"{e2e['acknowledged_distinct']} = {e2e['stored']}, lost {e2e['lost']}, "
            f"received {statuses['received']}",
            "lost 0",
            _verdict(nothing_lost),
        ),
        (f"{b} CPU ms per payment{suffix}", _cpu(e2e["cpu_ms_per_payment"]), "", ""),
        (
            f"{b} processing_ms mean / p99{suffix}",
            f"{_ms(e2e['processing_ms_mean'])} / {_ms(e2e['processing_ms_p99'])}",
            "",
            "",
        ),
    ]


def _ratio_rows(prefix: str, what: str, measured: dict) -> list[Row]:
    rounds, median, cpu = measured["rounds"], measured["ratio_median"], measured["cpu_ms_per_ack"]
    pairs = ", ".join(f"{r['acks_per_s']:,.0f} / {r['bare_acks_per_s']:,.0f}" for r in rounds)
    each = ", ".join(f"{r['ratio']:.2f}" for r in rounds)
    return [
        (f"{prefix} confirmation / bare acks/s, {what}", pairs, "", ""),
        (f"{prefix} CPU ms per bare ack, {what}", _cpu(cpu["bare"]), "", ""),
        (f"{prefix} CPU ms per confirmation ack, {what}", _cpu(cpu["confirmation"]), "", ""),
        *(
            [
                (
                    # Left at the end of every bare load: the worker was posting throughout.
                    f"{prefix} worker backlog over each bare load",
                    ", ".join(
                        f"{r['backlog_during_bare'][0]:,} -> {r['backlog_during_bare'][1]:,}" for r in rounds
                    ),
                    "> 0 left",
                    _verdict(all(r["backlog_during_bare"][1] > 0 for r in rounds)),
                )
            ]
            if all(r.get("backlog_during_bare") for r in rounds)
            else []
        ),
        (f"{prefix} errors, {what}", str(measured["errors"]), "0", _verdict(measured["errors"] == 0)),
        (
            f"{prefix} ratio, {what} (median of {len(rounds)} pairs)",
            f"{median:.2f} ({each})",
            f">= {BARE_RATIO_TARGET}",
            _verdict(median >= BARE_RATIO_TARGET),
        ),
    ]


def _default_rows(results: dict) -> list[Row]:
    queries = results["queries_per_payment"]
    validation = results["validation"]
    p99 = validation["latency_ms"]["p99"]
    rate = results["arguments"]["validation_rate"]
    return [
        *_confirmation_rows(results["confirmations"]),
        (
            "(b) queries per payment (mean, min-max)",
            f"{queries['mean']:.1f} ({queries['min']}-{queries['max']})",
            "",
            "",
        ),
        *_confirmation_rows(results["confirmations_worker_paused"], paused=True),
        (f"(c) validation p50 at {rate:g} req/s", _ms(validation["latency_ms"]["p50"]), "", ""),
        (
            f"(c) validation p99 at {rate:g} req/s",
            _ms(p99),
            f"< {VALIDATION_P99_TARGET_MS:.0f} ms",
            _verdict(p99 is not None and p99 < VALIDATION_P99_TARGET_MS),
        ),
        ("(c) validation errors", str(validation["errors"]), "0", _verdict(validation["errors"] == 0)),
        *_ratio_rows("(d)", "worker posting", results["ratio"]),
        *_ratio_rows("(d')", "worker paused", results["ratio_worker_paused"]),
    ]


def _scale_rows(results: dict) -> list[Row]:
    rows: list[Row] = []
    sizes = list(results["scale"])
    for size in sizes:
        measured = results["scale"][size]
        built = measured["portfolio"]
        suffix = f" @{int(size):,}"
        large = int(size) >= 1_000_000
        rows.append(
            (
                f"portfolio build{suffix}",
                f"{built['seconds']:.1f} s ({built['borrowers']:,} borrowers)",
                f"< {BUILD_1M_TARGET_S:.0f} s" if large else "",
                _verdict(built["seconds"] < BUILD_1M_TARGET_S) if large else "",
            )
        )
        rows += _confirmation_rows(measured, suffix)
        steady = measured["steady"]
        rows.append(
            (
                f"(e) steady {steady['rate']:g} req/s: ack p50 / p99{suffix}",
                f"{_ms(steady['latency_ms']['p50'])} / {_ms(steady['latency_ms']['p99'])}",
                "",
                "",
            )
        )
        rows.append(
            (
                f"(e) steady {steady['rate']:g} req/s: processing_ms mean / p99{suffix}",
                f"{_ms(steady['processing_ms_mean'])} / {_ms(steady['processing_ms_p99'])}",
                "",
                "",
            )
        )
        queries = measured["queries_per_payment"]
        rows.append(
            (
                f"(e) queries per payment{suffix}",
                f"{queries['mean']:.1f} ({queries['min']}-{queries['max']})",
                "",
                "",
            )
        )
    small, large = results["scale"][sizes[0]], results["scale"][sizes[-1]]
    label = f"{int(sizes[-1]):,}/{int(sizes[0]):,}"
    ratios = {
        "steady p50 ack latency": (
            large["steady"]["latency_ms"]["p50"],
            small["steady"]["latency_ms"]["p50"],
        ),
        "steady p99 ack latency": (
            large["steady"]["latency_ms"]["p99"],
            small["steady"]["latency_ms"]["p99"],
        ),
        "steady mean processing_ms": (
            large["steady"]["processing_ms_mean"],
            small["steady"]["processing_ms_mean"],
        ),
        "queries per payment": (large["queries_per_payment"]["mean"], small["queries_per_payment"]["mean"]),
    }
    results["scale_ratios"] = {}
    for name, (big, little) in ratios.items():
        ratio = big / little if big is not None and little else None
        results["scale_ratios"][name] = ratio
        shown = "-" if ratio is None else f"{ratio:.2f} ({big:,.1f} vs {little:,.1f})"
        ok = ratio is not None and ratio <= SCALE_RATIO_TARGET
        rows.append((f"(e) {name}, {label}", shown, f"<= {SCALE_RATIO_TARGET}", _verdict(ok)))
    return rows


def _posting_rows(results: dict) -> list[Row]:
    posting = results["posting"]
    sizes = list(posting)
    small, large = posting[sizes[0]], posting[sizes[-1]]
    label = f"{int(sizes[-1]):,}/{int(sizes[0]):,}"
    rows: list[Row] = []
    for size in sizes:
        built = posting[size]["portfolio"]
        rows.append(
            (
                f"portfolio @{int(size):,}",
                f"{built['loans']:,} loans, {built['borrowers']:,} borrowers",
                "",
                "",
            )
        )
    results["posting_ratios"] = {}
    for kind in large["kinds"]:
        for size in sizes:
            figures = posting[size]["kinds"][kind]
            e2e = figures["end_to_end"]
            rows.append(
                (
                    f"(g) {kind} @{int(size):,}: median round's drained/s, processing_ms mean, "
                    "worker CPU ms; every round's processing_ms mean",
                    f"{e2e['payments_per_s']:,.1f}, {_ms(e2e['processing_ms_mean'])}, "
                    f"{e2e['cpu_ms_per_payment'].get('worker', 0.0):.1f}; "
                    + ", ".join(_ms(mean) for mean in figures["round_means"]),
                    "",
                    "",
                )
            )
        # Each round measured the two sizes back to back: its ratio is free of the machine's drift.
        pairs = zip(large["kinds"][kind]["round_means"], small["kinds"][kind]["round_means"], strict=True)
        ratios = [big / little for big, little in pairs if big is not None and little]
        ratio = statistics.median(ratios) if ratios else None
        results["posting_ratios"][kind] = ratio
        rows.append(
            (
                f"(g) {kind}: processing_ms {label}, median of the rounds' ratios (each round's)",
                "-"
                if ratio is None
                else f"{ratio:.2f} (" + ", ".join(f"{each:.2f}" for each in ratios) + ")",
                f"<= {SCALE_RATIO_TARGET}",
                _verdict(ratio is not None and ratio <= SCALE_RATIO_TARGET),
            )
        )
    suffix = f" @{int(sizes[-1]):,}"
    rows += _confirmation_rows(large["end_to_end"], suffix)
    worker_ms = large["end_to_end"]["end_to_end"]["cpu_ms_per_payment"].get("worker", 0.0)
    rows.append(
        (
            f"(b) worker CPU ms per payment{suffix}",
            f"{worker_ms:.1f}",
            f"<= {WORKER_CPU_TARGET_MS:g}",
            _verdict(worker_ms <= WORKER_CPU_TARGET_MS),
        )
    )
    queries = large["queries_per_payment"]
    baseline = results.get("baseline")
    if baseline:
        before = baseline["posting"][sizes[-1]]["end_to_end"]["end_to_end"]["payments_per_s"]
        now = large["end_to_end"]["end_to_end"]["payments_per_s"]
        rows.append(
            (
                f"(b) posted/s against the baseline{suffix}",
                f"{now / before:.2f} ({now:,.1f} vs {before:,.1f})",
                f">= {POSTING_GAIN_TARGET:g}",
                _verdict(now / before >= POSTING_GAIN_TARGET),
            )
        )
    rows.append(
        (
            f"(b) queries per payment{suffix}",
            f"{queries['mean']:.1f} ({queries['min']}-{queries['max']})",
            "",
            "",
        )
    )
    matched = large["matched_burst"]["end_to_end"]
    unmatched = large["unmatched_burst"]["end_to_end"]
    for name, burst in (("matched", matched), ("unmatched", unmatched)):
        rows.append(
            (
                f"(h) burst of {burst['stored']:,} {name}{suffix}: drained/s, worker CPU ms",
                f"{burst['payments_per_s']:,.1f}, {burst['cpu_ms_per_payment'].get('worker', 0.0):.1f}",
                "",
                "",
            )
        )
    rows.append(
        (
            "(h) unmatched / matched drain rate",
            f"{unmatched['payments_per_s'] / matched['payments_per_s']:.2f}"
            if matched["payments_per_s"]
            else "-",
            ">= 1",
            _verdict(unmatched["payments_per_s"] >= matched["payments_per_s"]),
        )
    )
    return rows


def _scrape_rows(measured: dict) -> list[Row]:
    windows = measured["windows"]
    change = measured["change"]
    counted_ok = all(counted == acknowledged for counted, acknowledged in measured["counted_vs_acknowledged"])
    cpu = ", ".join(f"{role} {ms:.1f}" for role, ms in measured["cpu_ms_per_scrape"].items())
    return [
        (
            "(f) confirmation acks/s per load (1-s windows compared)",
            ", ".join(f"{load['acks_per_s']:,.0f}" for load in measured["loads"])
            + f" ({len(windows)} windows with scraping)",
            "",
            "",
        ),
        (
            "(f) acks/s without / with scraping (window means)",
            f"{measured['acks_per_s_without']:,.0f} / {measured['acks_per_s_with']:,.0f}",
            "",
            "",
        ),
        (
            "(f) ratio to bare without / with scraping",
            f"{measured['ratio_without']:.2f} / {measured['ratio_with']:.2f} "
            f"(bare {measured['bare_acks_per_s']:,.0f} acks/s)",
            "",
            "",
        ),
        (
            "(f) change with scraping (mean of the windows')",
            f"{change:+.1%} (" + ", ".join(format(w["change"], "+.0%") for w in windows) + ")",
            f"< {SCRAPE_CHANGE_TARGET:.0%}",
            _verdict(abs(change) < SCRAPE_CHANGE_TARGET),
        ),
        (
            "(f) /metrics scrapes: count, p50 / max",
            f"{measured['scrapes']}, {_ms(measured['scrape_ms_p50'])} / {_ms(measured['scrape_ms_max'])}",
            "",
            "",
        ),
        ("(f) CPU ms per scrape (idle server)", cpu, "", ""),
        (
            "(f) scrape errors, load errors",
            f"{measured['scrape_errors']}, {measured['errors']}",
            "0, 0",
            _verdict(measured["scrape_errors"] == 0 and measured["errors"] == 0),
        ),
        (
            "(f) acknowledged confirmations counted by /metrics",
            ", ".join(f"{counted} of {acks}" for counted, acks in measured["counted_vs_acknowledged"]),
            "all",
            _verdict(counted_ok),
        ),
    ]


def print_report(results: dict) -> None:
    arguments = results["arguments"]
    print()
    if "portfolio" in results:
        built = results["portfolio"]
        print(
            f"portfolio: {built['loans']:,} loans, {built['borrowers']:,} borrowers, built in "
            f"{built['seconds']:.1f} s"
        )
    print(
        f"load: {arguments['confirmations']:,} confirmations per measurement, {arguments['concurrency']} "
        f"concurrent senders ({arguments['client']} client, own process), 10 s timeout"
    )
    print(
        f"machine: {os.cpu_count()} CPU(s), Python {platform.python_version()}; gunicorn 4 gthread workers (gunicorn.conf.py), "
        f"1 Celery worker (concurrency 2, nice {WORKER_NICE}"
        f"{' for its process and autogroup' if results.get('worker_autogroup_nice') else ''}), "
        "PostgreSQL and Redis on the same machine"
    )
    if "scale" in results:
        rows = _scale_rows(results)
    elif "posting" in results:
        rows = _posting_rows(results)
    elif "confirmations" in results:
        rows = _default_rows(results)
    else:
        rows = []
    if "scrape" in results:
        rows += _scrape_rows(results["scrape"])
    header: Row = ("metric", "result", "target", "")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(4)]
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(
        f"\ntotal {results['total_s']:.0f} s (setup {results['setup_s']:.0f} s, "
        f"servers {results['servers_s']:.0f} s)"
    )


# --- entry point ----------------------------------------------------------------------------------


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loans", type=int, default=100_000, help="portfolio size of the default run")
    parser.add_argument("--confirmations", type=int, default=3_000, help="confirmations per measurement")
    parser.add_argument("--concurrency", type=int, default=32, help="load generator senders")
    parser.add_argument("--validation-rate", type=float, default=50.0, help="requests/s for (c)")
    parser.add_argument(
        "--steady-rate", type=float, default=50.0, help="confirmations/s for the --scale latency (e)"
    )
    parser.add_argument("--steady-seconds", type=float, default=20.0, help="seconds of steady load for (e)")
    parser.add_argument("--validation-seconds", type=float, default=20.0, help="duration of (c)")
    parser.add_argument("--scale", action="store_true", help="run (a)+(b) at 10,000 and 1,000,000 loans")
    parser.add_argument(
        "--posting",
        action="store_true",
        help="run (g) payer kinds at 10,000 and 1,000,000 loans, then (b) and (h) bursts at 1,000,000",
    )
    parser.add_argument("--kind-payments", type=int, default=KIND_PAYMENTS, help="payments per kind for (g)")
    parser.add_argument(
        "--kind-rounds", type=int, default=KIND_ROUNDS, help="rounds of the six kinds for (g)"
    )
    parser.add_argument(
        "--baseline",
        metavar="FILE",
        help="with --posting: the --json FILE of an earlier --posting run, to compare end-to-end posted/s",
    )
    parser.add_argument("--burst", type=int, default=BURST, help="payments per burst for (h)")
    parser.add_argument(
        "--scale-sizes",
        type=lambda text: tuple(int(part) for part in text.split(",")),
        default=SCALE_SIZES,
        help="portfolio sizes for --scale, comma separated (default 10000,1000000)",
    )
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator HTTP client (bench/loadgen.py)",
    )
    parser.add_argument(
        "--scrape", action="store_true", help="add (f): the ratio with /metrics scraped every second"
    )
    parser.add_argument(
        "--scrape-only", action="store_true", help="run only (f) after the setup (a short run)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    return parser.parse_args()


def next_redis_database(redis_url: str) -> str:
    """The Redis database after the one ``redis_url`` names: --posting's second site uses it (and
    flushes it, as the first). Raises ``Refused`` when there is none."""
    parts = urlsplit(redis_url)
    number = int(parts.path.strip("/") or 0)
    if number >= 15:
        raise Refused(f"--posting uses REDIS_URL's database and the next one: {number} has none after it")
    return parts._replace(path=f"/{number + 1}").geturl()


def main() -> int:
    args = parse_args()
    server_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    second_redis_url = None
    try:
        require_services(server_url, redis_url)
        if args.posting:
            second_redis_url = next_redis_database(redis_url)
            needed = GUNICORN_WORKERS * (GUNICORN_THREADS + -(-args.concurrency // GUNICORN_WORKERS))
            needed += 2 * SITE_CONNECTIONS
            free = postgres_free_connections(server_url)
            if free < needed:
                raise Refused(
                    f"--posting runs two sites that hold up to {needed} database connections; "
                    f"the server accepts {free} more (raise max_connections or lower --concurrency)"
                )
    except Refused as exc:
        print(f"bench/payments.py: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupted)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="haven-bench-payments-") as workdir:
        bench = Bench(
            args,
            server_url=server_url,
            redis_url=redis_url,
            workdir=Path(workdir),
            second_redis_url=second_redis_url,
        )
        try:
            bench.setup()
            if args.scale:
                bench.run_scale()
            elif args.posting:
                bench.run_posting()
            elif args.scrape_only:
                bench.run_scrape_only()
            else:
                bench.run_default()
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the servers and dropping the database", file=sys.stderr)
            return 130
        finally:
            # A second Ctrl-C must not leave servers or the database behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            bench.teardown()
    results = bench.results
    if args.baseline:
        results["baseline"] = json.loads(Path(args.baseline).read_text(encoding="utf-8"))
    results["total_s"] = time.perf_counter() - started
    results["arguments"] = {key: value for key, value in vars(args).items() if key != "json"}
    print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
