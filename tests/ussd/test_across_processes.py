"""Session state (the cache) and the PIN lock (the database) are shared by every web process: a
session begun in one process continues in another, and a lock set in one holds in the other."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.ussd.conftest import PHONE
from ussd.models import BorrowerPin
from ussd.services.pins import pin_set
from ussd.services.sessions import ussd_answer
from ussd.texts import en

pytestmark = [
    pytest.mark.postgres("a second process needs a database it can see"),
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parent.parent.parent
DIAL = """
import sys, django
django.setup()
from ussd.services.sessions import ussd_answer
for text in sys.argv[2:]:
    print(repr(ussd_answer(session_id=sys.argv[1], phone="+254712345678", service_code="*384*123#", text=text)))
"""


def other_process(session_id: str, *texts: str) -> list[str]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_READ_ENV_FILE": "false",
        "DJANGO_DEBUG": "true",  # a development process: no production secrets needed
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "USSD_PIN_KEYS": ",".join(settings.USSD_PIN_KEYS),
        "USSD_SERVICE_CODES": "*384*123#",
        "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
        "LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [sys.executable, "-c", DIAL, session_id, *texts],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [eval(line) for line in result.stdout.splitlines()]  # noqa: S307 - our own repr() output


@pytest.fixture
def redis_cache():
    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        pytest.skip("needs a cache shared between processes: set REDIS_URL")


def here(session_id: str, text: str) -> str:
    return ussd_answer(session_id=session_id, phone=PHONE, service_code="*384*123#", text=text)


def test_a_session_started_in_one_process_continues_in_another(redis_cache, borrower, loans, paybill):
    pin_set(borrower=borrower, pin="4829")
    assert other_process("shared-1", "", "1111") == [
        f"CON {en.PIN_ENTER}",
        f"CON {en.PIN_WRONG.format(left=2)}",
    ]
    assert (
        here("shared-1", "1111") == f"CON {en.PIN_WRONG.format(left=2)}"
    )  # the retry, answered from the cache
    assert here("shared-1", "1111*4829") == f"CON {en.MAIN}"
    assert BorrowerPin.objects.get(borrower=borrower).failed_attempts == 0


def test_a_lock_set_in_one_process_holds_in_another(redis_cache, borrower, loans, paybill):
    pin_set(borrower=borrower, pin="4829")
    answers = other_process("lock-1", "1111", "1111*2222", "1111*2222*3333")
    assert answers[-1].startswith("END Too many wrong PINs.")
    assert here("lock-2", "4829").startswith("END Too many wrong PINs.")
