"""The link code on the user's page in Django admin; the sweeper picking up a lost update; an
alert about a payment that does not exist; the bot's rows in the admin."""

import datetime
import hashlib
import re

import pytest
from django.utils import timezone

from bots import texts
from bots.models import TelegramUpdate
from bots.tasks import sweep_task
from core.models import AuditEvent, OutboxMessage
from core.services.outbox import outbox_deliver
from tests.bots.conftest import link, text_update
from tests.factories import AdminFactory, OfficerFactory

pytestmark = pytest.mark.django_db


def test_the_users_admin_page_makes_a_code_and_shows_it_once(client, telegram):
    admin = AdminFactory()
    officer = OfficerFactory(username="otieno")
    client.force_login(admin)
    page = client.get(f"/admin/core/user/{officer.pk}/change/")
    assert f'href="/admin/core/user/{officer.pk}/telegram-link/"' in page.content.decode()

    form = client.get(f"/admin/core/user/{officer.pk}/telegram-link/")
    assert form.status_code == 200 and "Make a link code" in form.content.decode()
    officer.refresh_from_db()
    assert officer.telegram_link_code_digest is None  # a GET makes nothing

    made = client.post(f"/admin/core/user/{officer.pk}/telegram-link/").content.decode()
    code = re.search(r"https://t\.me/haven_test_bot\?start=([A-Za-z0-9_-]+)", made).group(1)
    officer.refresh_from_db()
    assert officer.telegram_link_code_digest == hashlib.sha256(code.encode()).hexdigest()
    assert AuditEvent.objects.get(action="staff.telegram_code_created").actor_user == admin


def test_an_officer_cannot_make_codes_for_others(client, telegram):
    officer = OfficerFactory()
    client.force_login(officer)
    other = OfficerFactory()
    assert client.post(f"/admin/core/user/{other.pk}/telegram-link/").status_code in (403, 302)
    other.refresh_from_db()
    assert other.telegram_link_code_digest is None


def test_the_sweeper_handles_an_update_whose_task_was_lost(telegram):
    data = text_update(from_id=555, text="/help")
    import json

    row = TelegramUpdate.objects.create(update_id=data["update_id"], body=json.dumps(data))
    TelegramUpdate.objects.filter(pk=row.pk).update(
        received_at=timezone.now() - datetime.timedelta(minutes=2)
    )
    sweep_task()
    row.refresh_from_db()
    assert row.status == "processed"
    assert telegram.sent("sendMessage")[0].params == {"chat_id": 555, "text": texts.STRANGER}
    sweep_task()
    assert len(telegram.sent("sendMessage")) == 1


def test_an_alert_about_an_unknown_payment_is_sent_as_its_text(telegram):
    admin = link(AdminFactory(), 1001)
    message = OutboxMessage.objects.create(
        channel="telegram",
        recipient="1001",
        body="Payment ZZZ needs a look",
        user=admin,
        context={"kind": "review_request", "trans_id": "ZZZ"},
    )
    assert outbox_deliver(message_id=message.pk).status == "sent"
    assert telegram.sent("sendMessage")[0].params == {"chat_id": 1001, "text": "Payment ZZZ needs a look"}


def test_an_ops_alert_and_an_officer_note_are_sent_as_text(telegram):
    admin = link(AdminFactory(), 1001)
    for context in ({"kind": "ops", "alert": "queue_stuck"}, {"kind": "posted", "trans_id": "X1"}):
        message = OutboxMessage.objects.create(
            channel="telegram", recipient="1001", body=f"note {context['kind']}", user=admin, context=context
        )
        assert outbox_deliver(message_id=message.pk).status == "sent"
    assert [c.params["text"] for c in telegram.sent("sendMessage")] == ["note ops", "note posted"]


def test_the_bot_rows_are_listed_in_the_admin(admin_client, telegram):
    TelegramUpdate.objects.create(update_id=1, body="{}")
    for page in ("telegramupdate", "paymentalert", "callbackaction"):
        assert admin_client.get(f"/admin/bots/{page}/").status_code == 200
