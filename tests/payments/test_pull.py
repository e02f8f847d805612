"""Pull Transactions over HTTP against the Daraja emulator: lost callbacks recovered and posted once,
every page read, 1001 kept visible and alerted once per episode, the command and the beat task."""

from decimal import Decimal as D
from io import StringIO

import httpx
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from core.models import OutboxMessage
from payments.emulator import recovery as emulator_recovery
from payments.emulator.models import EmulatedPayment
from payments.models import CallbackRequest, MpesaTransaction
from payments.services.daraja import mpesa_simulate
from payments.services.pull import mpesa_pull_transactions
from payments.tasks import pull_transactions_task
from tests.factories import AdminFactory

pytestmark = pytest.mark.urls("tests.payments.emulator_urls")


def pay(config, amount: int = 500, *, lost: bool = True, reference: str = "LOAN-000123") -> str:
    answer = mpesa_simulate(
        config=config, phone="0722000000", amount=amount, bill_reference=reference, deliver_callbacks=not lost
    )
    return answer["TransID"]


def test_a_lost_callback_is_recovered_by_pull_and_posted_once(emulated_paybill, loan):
    trans_id = pay(emulated_paybill, 500)
    assert not MpesaTransaction.objects.exists()

    result = mpesa_pull_transactions(config=emulated_paybill)

    assert (result.fetched, result.known, result.created, result.code) == (1, 0, 1, "1000")
    tx = MpesaTransaction.objects.get()
    assert (tx.trans_id, tx.source, tx.status, tx.amount) == (trans_id, "pull", "processed", D("500.00"))
    assert (tx.msisdn, tx.msisdn_kind, tx.bill_reference) == ("254722000000", "plain", "LOAN-000123")
    loan.refresh_from_db()
    assert loan.outstanding == D("4500.00")
    emulated_paybill.refresh_from_db()
    assert (emulated_paybill.last_pull_code, emulated_paybill.last_pull_message) == ("1000", "Success")
    assert emulated_paybill.last_pull_at is not None

    again = mpesa_pull_transactions(config=emulated_paybill)

    assert (again.fetched, again.known, again.created) == (1, 1, 0)
    loan.refresh_from_db()
    assert loan.outstanding == D("4500.00")


def test_the_late_callback_after_a_pull_is_a_duplicate(emulated_paybill, loan):
    trans_id = pay(emulated_paybill, 500)
    mpesa_pull_transactions(config=emulated_paybill)

    # M-Pesa finally delivers the confirmation it had lost.
    payload = EmulatedPayment.objects.get(trans_id=trans_id).payload
    response = httpx.post(emulated_paybill.confirmation_url, json=payload)

    assert (response.status_code, response.json()) == (200, {"ResultCode": 0, "ResultDesc": "Success"})
    assert CallbackRequest.objects.get(kind="confirmation").outcome == "duplicate"
    assert MpesaTransaction.objects.get().source == "pull"
    loan.refresh_from_db()
    assert loan.outstanding == D("4500.00")


def test_every_page_is_read(emulated_paybill, loan, monkeypatch):
    monkeypatch.setattr(emulator_recovery, "PULL_PAGE_SIZE", 2)
    delivered = [pay(emulated_paybill, 100, lost=False) for _ in range(2)]
    lost = [pay(emulated_paybill, 100) for _ in range(3)]

    result = mpesa_pull_transactions(config=emulated_paybill)

    assert (result.fetched, result.known, result.created) == (5, 2, 3)
    by_source = dict(MpesaTransaction.objects.values_list("trans_id", "source"))
    assert by_source == {**dict.fromkeys(delivered, "callback"), **dict.fromkeys(lost, "pull")}
    loan.refresh_from_db()
    assert loan.outstanding == D("4500.00")


def test_1001_is_kept_and_alerted_once_per_episode_on_a_paybill_receiving_callbacks(emulated_paybill, loan):
    admin = AdminFactory(phone="+254700999888")
    nothing = mpesa_pull_transactions(config=emulated_paybill)
    assert (nothing.fetched, nothing.code) == (0, "1001")
    assert not OutboxMessage.objects.filter(user=admin).exists()  # nothing paid, nothing to say

    pay(emulated_paybill, 100, lost=False)
    EmulatedPayment.objects.all().delete()  # Daraja answers 1001 although payments arrive
    mpesa_pull_transactions(config=emulated_paybill)
    mpesa_pull_transactions(config=emulated_paybill)

    alerts = OutboxMessage.objects.filter(user=admin, context__alert="pull_1001")
    assert alerts.count() == 1
    assert alerts.get().context == {"kind": "ops", "alert": "pull_1001"}
    assert "600984" in alerts.get().body
    emulated_paybill.refresh_from_db()
    assert (emulated_paybill.last_pull_code, emulated_paybill.last_pull_message) == (
        "1001",
        "No transactions found",
    )

    pay(emulated_paybill, 100)  # pulls work again: the episode ends
    mpesa_pull_transactions(config=emulated_paybill)
    EmulatedPayment.objects.all().delete()
    mpesa_pull_transactions(config=emulated_paybill)

    assert OutboxMessage.objects.filter(user=admin, context__alert="pull_1001").count() == 2


def test_command_prints_the_counts(emulated_paybill, loan):
    pay(emulated_paybill, 500)
    out = StringIO()

    call_command("pull_transactions", hours=1, stdout=out)

    assert out.getvalue() == "600984: fetched 1 known 0 created 1 (1000 Success)\n"


def test_command_refuses_a_window_daraja_does_not_keep(emulated_paybill):
    err = StringIO()
    with pytest.raises(CommandError, match="failed for at least one paybill"):
        call_command("pull_transactions", hours=49, stderr=err)
    assert "at most 48 hours" in err.getvalue()


def test_a_refused_pull_is_recorded_as_the_last_pull(emulated_paybill, settings):
    settings.MPESA_EMULATOR_ENABLED = False  # the emulator now answers 404, as a wrong base URL would
    with pytest.raises(CommandError):
        call_command("pull_transactions", stderr=StringIO())
    emulated_paybill.refresh_from_db()
    assert emulated_paybill.last_pull_code and emulated_paybill.last_pull_code != "1000"
    assert emulated_paybill.last_pull_message


def test_beat_pulls_every_active_paybill(emulated_paybill, loan):
    pay(emulated_paybill, 500)

    assert pull_transactions_task() == 1
    assert MpesaTransaction.objects.get().source == "pull"


def test_beat_schedule_pulls_every_fifteen_minutes_over_two_hours():
    entry = settings.CELERY_BEAT_SCHEDULE["pull-transactions"]
    assert (entry["task"], entry["schedule"], settings.MPESA_PULL_HOURS) == (
        "payments.pull_transactions",
        900.0,
        2.0,
    )


# --- The emulator's Pull Transactions, as Daraja answers it --------------------------------------


def _token(emulator_url: str) -> dict[str, str]:
    response = httpx.get(
        f"{emulator_url}/oauth/v1/generate", params={"grant_type": "client_credentials"}, auth=("k", "s")
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"ShortCode": "600984", "StartDate": "yesterday", "EndDate": "2026-01-01 00:00:00"}, "StartDate"),
        (
            {
                "ShortCode": "600984",
                "StartDate": "2026-01-01 00:00:00",
                "EndDate": "2026-01-01 02:00:00",
                "OffSetValue": "-5",
            },
            "OffSetValue",
        ),
        ({"ShortCode": "x"}, "ShortCode"),
    ],
)
def test_emulator_pull_refuses_bad_queries(emulator_url, body, message):
    response = httpx.post(
        f"{emulator_url}/pulltransactions/v1/query", json=body, headers=_token(emulator_url)
    )

    assert response.status_code == 400
    assert message in response.json()["errorMessage"]


def test_emulator_pull_needs_a_token(emulator_url):
    response = httpx.post(f"{emulator_url}/pulltransactions/v1/query", json={"ShortCode": "600984"})
    assert response.status_code == 404


def test_emulator_pull_register_answers_like_daraja(emulator_url, live_server):
    response = httpx.post(
        f"{emulator_url}/pulltransactions/v1/register",
        json={
            "ShortCode": "600984",
            "RequestType": "Pull",
            "NominatedNumber": "254722000000",
            "CallBackURL": f"{live_server.url}/pull/",
        },
        headers=_token(emulator_url),
    )
    assert response.status_code == 200
    assert response.json()["ResponseStatus"] == "1000"


def test_the_last_pull_is_shown_on_both_configuration_pages(emulated_paybill, client):
    from django.urls import reverse

    admin = AdminFactory()
    client.force_login(admin)
    before = client.get(reverse("admin_ui:configuration")).content.decode()
    assert 'id="last-pull">never' in before

    mpesa_pull_transactions(config=emulated_paybill)

    staff_page = client.get(reverse("admin_ui:configuration")).content.decode()
    assert "1001 No transactions found" in staff_page
    admin_page = client.get(reverse("admin:payments_mpesaconfiguration_change", args=[emulated_paybill.pk]))
    assert admin_page.status_code == 200
    assert "No transactions found" in admin_page.content.decode()


LEDGER_FROM_ANOTHER_PROCESS = """
import django
django.setup()
from django.utils import timezone
from core.dates import NAIROBI
from payments.emulator.ledger import ledger_record
ledger_record(
    {
        "TransactionType": "Pay Bill", "TransID": "SKPROCESS1", "TransAmount": "650.00",
        "TransTime": timezone.now().astimezone(NAIROBI).strftime("%Y%m%d%H%M%S"),
        "BusinessShortCode": "600984", "BillRefNumber": "LOAN-000123", "InvoiceNumber": "",
        "OrgAccountBalance": "", "ThirdPartyTransID": "", "MSISDN": "254722000000",
        "FirstName": "JOHN", "MiddleName": "", "LastName": "DOE",
    },
    msisdn="254722000000",
    callbacks_delivered=False,
)
"""


@pytest.mark.postgres("another process writes the emulator's ledger into the test database")
def test_the_emulators_ledger_is_shared_between_processes(emulated_paybill, loan):
    import os
    import subprocess
    import sys

    from django.db import connection

    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_READ_ENV_FILE": "false",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
    }
    subprocess.run([sys.executable, "-c", LEDGER_FROM_ANOTHER_PROCESS], env=env, check=True, timeout=120)

    result = mpesa_pull_transactions(config=emulated_paybill)  # answered by the live server's thread

    assert (result.fetched, result.created) == (1, 1)
    assert MpesaTransaction.objects.get().trans_id == "SKPROCESS1"
    loan.refresh_from_db()
    assert loan.outstanding == D("4350.00")
