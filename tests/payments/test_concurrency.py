"""On PostgreSQL with real concurrency: duplicate deliveries create nothing, distinct payments all post,
and a worker process killed inside its posting transaction loses nothing."""

import json
import threading
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from core.models import Repayment
from payments.models import CallbackRequest, MpesaConfiguration, MpesaTransaction
from tests.factories import BorrowerFactory, LoanFactory
from tests.payments.conftest import daraja_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def deliver_concurrently(config: MpesaConfiguration, payloads: list[dict]) -> list[int]:
    barrier = threading.Barrier(len(payloads))
    statuses: list[int] = []
    url = f"/payments/c2b/{config.callback_token}/confirmation/"

    def send(payload: dict) -> None:
        try:
            barrier.wait(timeout=10)
            response = Client().post(url, data=json.dumps(payload), content_type="application/json")
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(payload,)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


@pytest.fixture
def config():
    return MpesaConfiguration.objects.create(
        business_short_code="600984", base_url="https://pay.haven.example"
    )


def test_fifty_deliveries_of_one_trans_id_at_once_create_one_payment(config):
    loan = LoanFactory(loan_number="LOAN-000123", principal_disbursed=D("5000"), principal=D("5000"))
    payload = daraja_payload("confirmation_hashed.json")
    payload["TransAmount"] = "1500.00"

    statuses = deliver_concurrently(config, [payload] * 50)

    assert statuses == [200] * 50
    assert MpesaTransaction.objects.count() == 1
    # Every request is kept: one as the payment, the other 49 as duplicates.
    assert list(CallbackRequest.objects.order_by().values_list("outcome", flat=True).distinct()) == [
        "duplicate"
    ]
    assert CallbackRequest.objects.count() == 49
    loan.refresh_from_db()
    assert loan.outstanding == D("3500.00")
    assert Repayment.objects.count() == 1


def test_twenty_distinct_payments_to_one_loan_at_once_leave_the_exact_balance(config):
    borrower = BorrowerFactory(phones=["+254722000000"])
    loan = LoanFactory(
        loan_number="LOAN-000123",
        borrower=borrower,
        principal_disbursed=D("10000"),
        principal=D("10000"),
        interest=D("1234.56"),
    )
    payloads = []
    for i in range(20):
        payload = daraja_payload("confirmation_hashed.json", TransID=f"RKL5{i:06d}", TransAmount="333.33")
        payloads.append(payload)

    statuses = deliver_concurrently(config, payloads)

    assert statuses == [200] * 20
    assert set(MpesaTransaction.objects.values_list("status", flat=True)) == {"processed"}
    loan.refresh_from_db()
    assert loan.outstanding == D("11234.56") - 20 * D("333.33")
    assert loan.interest == D("0.00")
    assert Repayment.objects.filter(loan=loan).count() == 20


def test_drains_running_side_by_side_post_every_payment_once(config):
    """Four drain tasks at once (four worker processes): SKIP LOCKED hands each payment to one of them."""
    from payments.models import Allocation
    from payments.tasks import drain_received_task
    from tests.payments.test_processing import stored_payment

    borrower = BorrowerFactory(phones=["+254722000000"])
    loan = LoanFactory(
        loan_number="LOAN-000123", borrower=borrower, principal_disbursed=D("100000"), principal=D("100000")
    )
    for i in range(40):
        stored_payment(config, trans_id=f"DRN{i:07d}", bill_reference="LOAN-000123", amount=D("100.00"))
    barrier = threading.Barrier(4)
    done: list[int] = []

    def drain() -> None:
        try:
            barrier.wait(timeout=10)
            done.append(drain_received_task())
        finally:
            connection.close()

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(done) == 40
    assert set(MpesaTransaction.objects.values_list("status", flat=True)) == {"processed"}
    assert Allocation.objects.count() == 40 and Repayment.objects.count() == 40
    loan.refresh_from_db()
    assert loan.outstanding == D("96000.00")


KILLED_WORKER = """
import django
django.setup()
from payments.services.processing import transaction_process_next
transaction_process_next()
"""


def test_a_worker_process_killed_inside_the_posting_transaction_loses_nothing(config, settings):
    """SIGKILL a real process while it holds a claimed payment inside its posting transaction (held
    there by a loan row this test has locked): nothing it did in that transaction survives, the
    claim has counted an attempt, and once the lease is over the payment is posted exactly once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psycopg2
    from django.conf import settings as django_settings

    from payments.parsing import parse_c2b_body
    from payments.services.processing import transaction_process_next
    from payments.services.storing import payment_insert, transaction_values

    loan = LoanFactory(loan_number="LOAN-000321", principal_disbursed=D("5000"), principal=D("5000"))
    payload = parse_c2b_body(
        json.dumps(daraja_payload("confirmation_hashed.json", BillRefNumber="LOAN-000321"))
    )
    assert payment_insert(transaction_values(payload, config))  # stored, as a confirmation stores it

    db = connection.settings_dict
    url = (
        f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}?application_name=haven-killed-worker"
    )
    locker = psycopg2.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"])
    worker = None
    try:
        with locker.cursor() as cursor:  # holds the loan row until locker.rollback()
            cursor.execute("SELECT 1 FROM core_loan WHERE id = %s FOR UPDATE", [loan.pk])
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_READ_ENV_FILE": "false",
            "DATABASE_URL": url,
            "FIELD_ENCRYPTION_KEYS": ",".join(django_settings.FIELD_ENCRYPTION_KEYS),
            "CELERY_TASK_ALWAYS_EAGER": "true",
        }
        worker = subprocess.Popen([sys.executable, "-c", KILLED_WORKER], env=env)
        waiting = 0
        deadline = time.monotonic() + 20
        while not waiting and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.05)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = 'haven-killed-worker' AND wait_event_type = 'Lock'"
                )
                waiting = cursor.fetchone()[0]
        assert waiting == 1, "the worker never reached the locked loan"
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=10) == -signal.SIGKILL
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        locker.rollback()
        locker.close()
    with connection.cursor() as cursor:  # the killed client's session, if PostgreSQL has not yet ended it
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'haven-killed-worker'"
        )

    tx = MpesaTransaction.objects.get()
    loan.refresh_from_db()
    assert (tx.status, tx.attempts) == ("received", 1)  # the claim committed; the posting did not
    assert tx.next_attempt_at > timezone.now()  # leased to the dead worker for a while
    assert loan.outstanding == D("5000.00") and not Repayment.objects.exists()
    assert not tx.allocations.exists()
    assert transaction_process_next() is None  # nobody takes it during the lease

    MpesaTransaction.objects.update(next_attempt_at=timezone.now())  # the lease is over
    assert transaction_process_next().status == "processed"
    assert transaction_process_next() is None
    loan.refresh_from_db()
    assert loan.outstanding == D("3500.00") and Repayment.objects.count() == 1
