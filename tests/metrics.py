"""Reading /metrics in tests: the exposition parsed by prometheus_client's own parser."""

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

TOKEN = "metrics-token-for-tests-0123456789"


def scrape_text(client, token: str = TOKEN) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample: ``(name, frozenset(labels.items())) -> value``."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, token: str = TOKEN) -> dict[tuple[str, frozenset], float]:
    return samples(scrape_text(client, token))


def value(scraped: dict, name: str, **labels: str) -> float:
    """The value of one sample (0 when it is not there: a series that never moved)."""
    return scraped.get((name, frozenset(labels.items())), 0.0)


# --- counting in other processes (prometheus-client's multiprocess mode) -------------------------------

ROOT = Path(__file__).resolve().parent.parent

_COUNT = """
import sys, django
django.setup()
from core.metrics import OUTBOX_FAILED
from payments.metrics import callback_observe
for _ in range({count}):
    callback_observe(kind="confirmation", outcome="accepted", seconds=0.02)
OUTBOX_FAILED.labels("telegram").inc()
print("counted", flush=True)
sys.stdin.readline()  # running until the test lets it end
"""


def counting_process(directory: Path, count: int) -> subprocess.Popen:
    """A process started as deploy/Procfile starts the Celery worker (through ``config.metrics_dir``,
    with ``PROMETHEUS_MULTIPROC_DIR=directory``) that counts ``count`` accepted confirmations and one
    failed Telegram delivery, then keeps running until ``process_end``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_READ_ENV_FILE": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "config.metrics_dir", sys.executable, "-c", _COUNT.format(count=count)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "counted", "the counting process did not start"
    return process


def process_end(process: subprocess.Popen) -> None:
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=30) == 0
