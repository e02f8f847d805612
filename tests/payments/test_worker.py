"""A real Celery worker against PostgreSQL and Redis: on connecting to its broker it drains the
payments that waited while no bell could ring (Redis down, or no worker running)."""

import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from payments.models import MpesaTransaction
from tests.factories import LoanFactory, MpesaConfigurationFactory
from tests.payments.test_processing import stored_payment
from tests.processes import clean_environment, stop_process_group

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = [
    pytest.mark.postgres("a worker process needs a database it can share"),
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL) as the broker"),
    pytest.mark.django_db(transaction=True),
]


def test_a_worker_that_connects_drains_payments_that_waited_without_a_ring():
    loan = LoanFactory(loan_number="LOAN-000777", principal_disbursed=D("5000"), principal=D("5000"))
    # Stored as a confirmation stores it, but its ring was lost (Redis was down): nothing is queued.
    tx = stored_payment(MpesaConfigurationFactory(), trans_id="RKLWAIT001", bill_reference="LOAN-000777")

    # Nothing left on the queue by an earlier test may do the worker's job for it.
    from config.celery import app as celery_app

    with celery_app.connection_for_write() as broker:
        broker.default_channel.queue_purge(celery_app.conf.task_default_queue)

    db = connection.settings_dict
    env = clean_environment(
        DJANGO_DEBUG="true",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        FIELD_ENCRYPTION_KEYS=",".join(settings.FIELD_ENCRYPTION_KEYS),
        LOG_LEVEL="WARNING",
    )
    celery = str(Path(sys.executable).parent / "celery")
    worker = subprocess.Popen(
        [celery, "-A", "config", "worker", "--pool", "solo", "--without-mingle", "--without-gossip"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.poll() is None:
            tx.refresh_from_db()
            if tx.status != MpesaTransaction.Status.RECEIVED:
                break
            time.sleep(0.2)
    finally:
        stop_process_group(worker)

    assert tx.status == MpesaTransaction.Status.PROCESSED
    loan.refresh_from_db()
    assert loan.outstanding == D("4000.00")
