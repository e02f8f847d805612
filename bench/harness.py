"""Plumbing of the benchmarks: prerequisites, the throwaway database, Redis, Django set up on them, child
processes in their own process groups, the environment they share, a run that cleans up after itself
when interrupted, and where the CPU went."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BENCH_DATABASE = "haven_bench_payments"
# The PostgreSQL server of the benches that need one, when DATABASE_URL names none.
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"


class Refused(Exception):
    """A prerequisite is missing; the benchmark does not start."""


class Processes:
    """Child processes, each in its own process group so that stopping one stops everything it forked."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()  # the child holds its own descriptor
        self.running[name] = process
        return process

    def log_tail(self, name: str, lines: int = 25) -> str:
        path = self.workdir / f"{name}.log"
        if not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, name: str) -> None:
        """SIGTERM to the process group, SIGKILL to whatever is left after 15 s."""
        process = self.running.pop(name, None)
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            os.killpg(process.pid, signal.SIGCONT)  # a paused (SIGSTOP) worker must see the SIGTERM
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
        # The leader may be gone while something it forked is not.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)


def autogroup_nice(pid: int, nice: int) -> bool:
    """Give the scheduler autogroup of ``pid`` (its session) the weight of ``nice``; returns whether it could.

    With autogroup scheduling (Linux, ``/proc/sys/kernel/sched_autogroup_enabled``) every session is
    one scheduling entity and the CPU is shared between sessions before nice values are looked at:
    a process started with ``nice -n 10`` in a session of its own competes with the web server's
    session as an equal. Writing the autogroup's nice is what makes the lower priority real."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- PostgreSQL and Redis -------------------------------------------------------------------------


class _postgres_admin:
    """An autocommit cursor on the server's maintenance database (CREATE DATABASE cannot run in a
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
            connect_timeout=5,
        )
        self.connection.autocommit = True

    def __enter__(self):
        self.cursor = self.connection.cursor()
        return self.cursor

    def __exit__(self, *exc_info: object) -> None:
        self.cursor.close()
        self.connection.close()


def postgres_drop(server_url: str, database: str = BENCH_DATABASE) -> None:
    with _postgres_admin(server_url) as cursor:
        # FORCE: a server killed mid-run may still hold connections to it.
        cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def postgres_recreate(server_url: str, database: str = BENCH_DATABASE) -> None:
    postgres_drop(server_url, database)
    with _postgres_admin(server_url) as cursor:
        cursor.execute(f'CREATE DATABASE "{database}"')


def postgres_free_connections(server_url: str) -> int:
    """How many more connections the server accepts for ordinary users right now."""
    with _postgres_admin(server_url) as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int - count(*) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend'"
        )
        return cursor.fetchone()[0]


def is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in ("postgres", "postgresql", "psql", "pgsql")


@contextlib.contextmanager
def throwaway_database(database: str) -> Iterator[Path]:
    """Point ``DATABASE_URL`` at a throwaway database of the kind it names, never at that database
    itself: on PostgreSQL ``database`` on the same server (created now, dropped afterwards),
    otherwise an SQLite file. Yields a temporary directory, where the SQLite file lives and the
    bench may write its own files. ``DATABASE_URL`` is read as config/settings.py reads it: the
    environment first, then a .env file."""
    import environ

    if (BASE_DIR / ".env").is_file():
        environ.Env.read_env(BASE_DIR / ".env")
    server_url = os.environ.get("DATABASE_URL", "")
    on_postgres = is_postgres(server_url)
    with tempfile.TemporaryDirectory(prefix="haven-bench-") as workdir:
        if on_postgres:
            postgres_recreate(server_url, database)
            os.environ["DATABASE_URL"] = urlsplit(server_url)._replace(path=f"/{database}").geturl()
        else:
            os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
        try:
            yield Path(workdir)
        finally:
            if on_postgres:
                from django.db import connections

                connections.close_all()
                postgres_drop(server_url, database)


def django_migrated(*, bare_table: bool = False) -> None:
    """Set Django up in this process, on the database its environment names, with DEBUG off (as in
    production: with DEBUG on, Django keeps the text of the last 9,000 queries in memory), and
    migrate that database; with ``bare_table`` also create bench/bare.py's table. Settings default to
    production, which needs secrets an in-process benchmark has no use for: unless its environment says
    otherwise it asks for development, and DEBUG is turned off here."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    if bare_table:
        from bench.bare import BARE_TABLE_DDL

        with connection.cursor() as cursor:
            cursor.execute(BARE_TABLE_DDL)


def redis_flush(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url, socket_connect_timeout=3).flushdb()


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or ''}{parts.path}"


def service_urls(default_redis_url: str) -> tuple[str, str]:
    """The PostgreSQL server and the Redis database of a run (``DATABASE_URL``, ``REDIS_URL``, or the
    defaults). Raises ``Refused`` unless PostgreSQL, Redis, gunicorn and celery are all there."""
    server_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or default_redis_url
    require_services(server_url, redis_url)
    return server_url, redis_url


def require_services(server_url: str, redis_url: str) -> None:
    """Raise ``Refused`` unless PostgreSQL, Redis, gunicorn and celery are all there."""
    import psycopg2
    import redis

    if not is_postgres(server_url):
        raise Refused(f"DATABASE_URL must name a PostgreSQL server (got {urlsplit(server_url).scheme!r})")
    try:
        with _postgres_admin(server_url) as cursor:
            cursor.execute("SELECT 1")
    except psycopg2.Error as exc:
        raise Refused(f"PostgreSQL is not reachable at {_where(server_url)}: {exc}".strip()) from None
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except (redis.RedisError, ValueError) as exc:
        raise Refused(f"Redis is not reachable at {_where(redis_url)}: {exc}") from None
    for tool in ("gunicorn", "celery"):
        if not (BIN / tool).is_file():
            raise Refused(f"{BIN / tool} is missing (make install)")


def bench_environment(database_url: str, redis_url: str) -> dict[str, str]:
    """The environment of every process of the run: production-like settings, generated secrets."""
    from cryptography.fernet import Fernet

    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_READ_ENV_FILE": "false",
            "DJANGO_DEBUG": "false",
            # gunicorn.conf.py: no access log, so the figures measure the application (as before it).
            "GUNICORN_ACCESS_LOG": "",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "AFRICASTALKING_CALLBACK_SECRET": secrets.token_urlsafe(24),
            "USSD_PIN_KEYS": secrets.token_urlsafe(32),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "SMS_BACKEND": "console",
            "MPESA_EMULATOR_ENABLED": "false",
            "TRUSTED_PROXIES": "",
            # Keep each process's database connection for the whole run, so that no measurement pays
            # for reconnecting and the backends' CPU can be read from /proc.
            "DB_CONN_MAX_AGE": "3600",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH")])),
        }
    )
    return env


# --- a run ------------------------------------------------------------------------------------------


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_steps(*steps: Callable[[], object], teardown: Callable[[], object], cleanup: str) -> bool:
    """Run ``steps`` in order, then ``teardown`` whatever happened. SIGTERM counts as Ctrl-C: the run
    says ``cleanup`` (what the teardown undoes) and returns ``False``; ``True`` when every step ran."""
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        for step in steps:
            step()
    except KeyboardInterrupt:
        print(f"\ninterrupted: {cleanup}", file=sys.stderr)
        return False
    finally:
        # A second Ctrl-C must not leave servers or the database behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        teardown()
    return True


# --- where the CPU went ----------------------------------------------------------------------------

_POSTGRES_SHARED = ("walwriter", "checkpointer", "background writer", "autovacuum launcher", "stats")


def cpu_snapshot(*, groups: dict[str, int], database: str = BENCH_DATABASE) -> Counter:
    """CPU seconds used so far, by role: each process group in ``groups`` (name -> leader pid), the
    PostgreSQL backends of ``database``, PostgreSQL's shared background processes, Redis, and
    ``machine``, the whole machine (every CPU, every process). Reads /proc (Linux); an empty Counter
    elsewhere. A process that exits between two snapshots (a database connection opened and closed
    meanwhile) is missed here and shows up only in ``machine``."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    by_leader = {pid: name for name, pid in groups.items()}
    used: Counter = Counter()
    proc = Path("/proc")
    if not proc.is_dir():
        return used
    # user nice system idle iowait irq softirq steal ...: busy is everything but idle and iowait.
    jiffies = [int(value) for value in (proc / "stat").read_text().splitlines()[0].split()[1:9]]
    used["machine"] = (sum(jiffies) - jiffies[3] - jiffies[4]) / ticks
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        # The command name in parentheses may hold spaces: the fields start after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        group, seconds = int(fields[2]), (int(fields[11]) + int(fields[12])) / ticks
        if group in by_leader:
            used[by_leader[group]] += seconds
        elif command.startswith("postgres: "):
            # "postgres: 15/main: postgres haven_bench_payments 127.0.0.1(5432) idle", or without the
            # cluster name; background processes read "postgres: 15/main: walwriter".
            title = command.split(": ")[-1]
            if f" {database} " in f" {title} ":
                used["postgres"] += seconds
            elif title.startswith(_POSTGRES_SHARED):
                used["postgres (shared)"] += seconds
        elif "redis-server" in command:
            used["redis"] += seconds
    return used
