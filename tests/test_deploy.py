"""deploy/: the example Prometheus configuration and alert rules agree with what /metrics serves."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.utils import timezone

from payments.parsing import parse_c2b_body
from payments.services.storing import new_transaction
from tests.factories import MpesaConfigurationFactory
from tests.metrics import TOKEN, scrape
from tests.payments.conftest import daraja_payload

PROMETHEUS = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
RULES = PROMETHEUS / "haven-alerts.yml"


def _selectors(text: str) -> list[tuple[str, dict[str, str]]]:
    """Every ``haven_*`` series a PromQL text selects, with its exact label matchers."""
    found = []
    for match in re.finditer(r"\b(haven_[a-z_]+)(\{[^}]*\})?", text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        found.append((match.group(1), labels))
    return found


@pytest.mark.django_db
def test_every_series_the_rules_select_is_served(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, []
    # The pull gauges have a sample per paybill that was pulled at least once, the last confirmation's
    # per paybill that received one.
    config = MpesaConfigurationFactory(last_pull_at=timezone.now(), last_pull_code="1000")
    body = json.dumps(daraja_payload("confirmation_hashed.json"), default=str)
    new_transaction(parse_c2b_body(body), config).save(force_insert=True)
    served = scrape(client)
    selectors = _selectors(RULES.read_text())
    assert len(selectors) > 10
    missing = [
        (name, labels)
        for name, labels in selectors
        if not any(
            served_name == name and set(labels.items()) <= set(served_labels)
            for served_name, served_labels in served
        )
    ]
    assert missing == []


def _promtool() -> str | None:
    return os.environ.get("PROMTOOL") or shutil.which("promtool")


@pytest.mark.skipif(_promtool() is None, reason="promtool is not installed (Debian: prometheus package)")
def test_promtool_accepts_the_configuration_and_the_rules_pass_their_tests():
    promtool = _promtool()
    assert promtool is not None
    for args in (
        ["check", "config", "--syntax-only", "prometheus.yml"],
        ["check", "rules", "haven-alerts.yml"],
        ["test", "rules", "haven-alerts.test.yml"],
    ):
        result = subprocess.run(
            [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
