"""On PostgreSQL with real concurrency: two people confirming an assignment of the same payment at
the same moment (each on their own Confirm) move the money once."""

import threading
import time

import pytest
from django.db import connection

from bots.clients.telegram import TelegramClient
from bots.models import CallbackAction, PaymentAlert
from bots.services import taps
from bots.services.alerts import new_action
from core.models import AuditEvent
from payments.models import MpesaTransaction
from tests.bots.conftest import link
from tests.factories import AdminFactory, LoanFactory, MpesaConfigurationFactory
from tests.payments.test_processing import stored_payment

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_confirms_at_once_assign_once(telegram, monkeypatch):
    first, second = link(AdminFactory(username="amina"), 1001), link(AdminFactory(username="baraka"), 1002)
    LoanFactory(loan_number="LOAN-000123")
    LoanFactory(loan_number="LOAN-000124")
    stored_payment(MpesaConfigurationFactory(), status="unmatched")
    alert = PaymentAlert.objects.create(trans_id="RKL51ZDR4F", kind="unmatched")
    confirms = [
        new_action(
            verb="confirm",
            trans_id="RKL51ZDR4F",
            alert=alert,
            chat_id=user.telegram_chat_id,
            owner=user,
            loan_number=loan,
        )
        for user, loan in ((first, "LOAN-000123"), (second, "LOAN-000124"))
    ]
    assign = taps.transaction_assign

    def slow_assign(**kwargs):
        time.sleep(0.5)  # the first is still assigning when the second arrives
        return assign(**kwargs)

    monkeypatch.setattr(taps, "transaction_assign", slow_assign)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def confirm(user, action: CallbackAction) -> None:
        try:
            barrier.wait(timeout=10)
            tap = taps.Tap(
                query_id=str(user.pk),
                data=action.token,
                telegram_user_id=user.telegram_user_id,
                chat_id=user.telegram_chat_id,
                message_id=None,
            )
            outcomes.append(taps.tap_handle(client=TelegramClient(), tap=tap))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=confirm, args=pair) for pair in zip((first, second), confirms, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(outcomes) == 2
    assert AuditEvent.objects.filter(action="mpesa.assigned").count() == 1
    assert sum("Assigned to" in outcome for outcome in outcomes) == 1
    assert MpesaTransaction.objects.get().status == "processed"
