"""Settings are driven by the environment: checked in fresh interpreters, each with its own env."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parent.parent
PRINT_SETTINGS = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], 'cache': s.CACHES['default']['BACKEND'], "
    "'broker': s.CELERY_BROKER_URL, 'eager': s.CELERY_TASK_ALWAYS_EAGER, 'debug': s.DEBUG, "
    "'sms': s.SMS_BACKEND, 'keys': len(s.FIELD_ENCRYPTION_KEYS), 'emulator': s.MPESA_EMULATOR_ENABLED}))"
)
DEVELOPMENT = {"DJANGO_DEBUG": "true"}
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "x7#kq2!vR9$mZp4@Lw8&Tn3^Yb6*Hc1(Gd5)Fs0_Je-Ua+Xi=Oe",
    "DJANGO_ALLOWED_HOSTS": "pay.haven.example",
    "FIELD_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
    "AFRICASTALKING_CALLBACK_SECRET": "cb-secret-9f2Kq7wLx3",
    "USSD_PIN_KEYS": "pin-key-new-Zq81,pin-key-old-Yp02",
}


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=clean_environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settings_with(**env: str) -> dict:
    result = run(["-c", PRINT_SETTINGS], **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_embedded_default_needs_no_service():
    assert settings_with(**DEVELOPMENT) == {
        "db": "django.db.backends.sqlite3",
        "cache": "django.core.cache.backends.db.DatabaseCache",
        "broker": "memory://localhost/",
        "eager": True,
        "debug": True,
        "sms": "console",
        "keys": 1,
        "emulator": True,
    }


@pytest.mark.parametrize(
    "command",
    [["-c", "import config.wsgi"], ["manage.py", "check"], ["-c", PRINT_SETTINGS]],
    ids=["wsgi", "manage.py", "django.setup"],
)
def test_a_process_started_without_environment_refuses_to_start(command):
    # Not a debug server with the Daraja emulator on: production, which needs its secrets.
    result = run(command)
    assert result.returncode != 0
    assert (
        "DJANGO_DEBUG is not set, so this runs as production, and these settings must be set in the "
        "environment: DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, FIELD_ENCRYPTION_KEYS. For local development "
        "set DJANGO_DEBUG=true"
    ) in result.stderr


def test_production_runs_with_debug_and_the_emulator_off():
    got = settings_with(**PRODUCTION)
    assert (got["debug"], got["emulator"]) == (False, False)


def test_the_emulator_switched_on_in_production_refuses_to_start():
    result = run(["-c", PRINT_SETTINGS], **PRODUCTION, MPESA_EMULATOR_ENABLED="true")
    assert result.returncode != 0
    assert "MPESA_EMULATOR_ENABLED must not be on in production" in result.stderr


def test_every_process_of_the_procfile_states_production():
    processes = [
        line.split(":", 1)
        for line in (ROOT / "deploy" / "Procfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {name for name, _ in processes} >= {"web", "worker", "beat"}
    for name, command in processes:
        assert command.split()[0] == "DJANGO_DEBUG=false", f"{name}: {command}"


def test_database_and_redis_urls_switch_to_postgresql_and_redis():
    got = settings_with(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/haven",
        REDIS_URL="redis://127.0.0.1:6379/0",
        **DEVELOPMENT,
    )
    assert got["db"] == "django.db.backends.postgresql"
    assert got["cache"] == "django_redis.cache.RedisCache"
    assert (got["broker"], got["eager"]) == ("redis://127.0.0.1:6379/0", False)


@pytest.mark.parametrize(
    "missing",
    [
        "DJANGO_SECRET_KEY",
        "DJANGO_ALLOWED_HOSTS",
        "FIELD_ENCRYPTION_KEYS",
        "AFRICASTALKING_CALLBACK_SECRET",
        "USSD_PIN_KEYS",
    ],
)
def test_production_refuses_to_start_without_its_secrets(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = run(["-c", PRINT_SETTINGS], **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_production_refuses_a_malformed_encryption_key():
    result = run(["-c", PRINT_SETTINGS], **{**PRODUCTION, "FIELD_ENCRYPTION_KEYS": "not-a-key"})
    assert result.returncode != 0
    assert "not a Fernet key" in result.stderr


def test_switching_on_africastalking_without_credentials_fails_at_start():
    result = run(["-c", PRINT_SETTINGS], SMS_BACKEND="africastalking", **DEVELOPMENT)
    assert result.returncode != 0
    assert "AFRICASTALKING_API_KEY" in result.stderr


def test_deploy_check_is_clean_in_production():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_env_example_documents_every_setting_read():
    import re

    read = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', (ROOT / "config" / "settings.py").read_text()))
    read |= {"DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "FIELD_ENCRYPTION_KEYS"}
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert read - documented == set()
    assert len(read) > 15


@pytest.mark.parametrize("program", ["worker", "beat"])
def test_a_celery_worker_or_beat_without_a_broker_refuses_to_start(program, tmp_path):
    celery = str(Path(sys.executable).parent / "celery")
    extra = ["--schedule", str(tmp_path / "beat-schedule")] if program == "beat" else []

    result = subprocess.run(
        [celery, "-A", "config", program, *extra],
        cwd=ROOT,
        env=clean_environment(**DEVELOPMENT),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert f"celery {program}: there is no broker: without REDIS_URL" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"METRICS_ALLOWED_IPS": "10.0.0.0/8,not-an-address"}, "'not-an-address' is not an address"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN must be at least 24 characters"),
        ({"PROMETHEUS_MULTIPROC_DIR": "/nonexistent/haven-metrics"}, "is not a directory"),
        ({"ALERT_HOURS": "7-21"}, "ALERT_HOURS must look like 07:00-21:00"),
        ({"ALERT_HOURS": "07:00-25:00"}, "ALERT_HOURS must look like 07:00-21:00"),
        ({"ALERT_FAILURE_RATE": "20"}, "ALERT_FAILURE_RATE is a fraction"),
        ({"ALERT_BACKLOG_SECONDS": "0"}, "must be positive"),
    ],
)
def test_a_bad_operations_setting_fails_at_start(env, error):
    result = run(["-c", PRINT_SETTINGS], **DEVELOPMENT, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and error in result.stderr


def test_an_empty_metrics_directory_leaves_each_process_counting_alone(tmp_path):
    # .env.example's empty PROMETHEUS_MULTIPROC_DIR= line: prometheus_client would take a variable that
    # is set at all for multiprocess mode, and write its files into the working directory.
    count = (
        "import django; django.setup(); import os, prometheus_client.values as v; "
        "from payments.metrics import callback_observe; "
        "callback_observe(kind='confirmation', outcome='accepted', seconds=0.01); "
        "print(v.ValueClass.__name__, 'PROMETHEUS_MULTIPROC_DIR' in os.environ)"
    )
    result = subprocess.run(
        [sys.executable, "-c", count],
        cwd=tmp_path,
        env=clean_environment(**DEVELOPMENT, PROMETHEUS_MULTIPROC_DIR="", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["MutexValue", "False"]
    assert list(tmp_path.iterdir()) == []
