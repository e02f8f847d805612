"""The webhook: the secret, storing each update once, malformed and oversized bodies, and linking."""

import datetime

import pytest
from django.utils import timezone

from bots import texts
from bots.models import TelegramUpdate
from core.actors import Actor
from core.models import AuditEvent, User
from core.services.staff import user_telegram_code_create
from tests.bots.conftest import SECRET, link, text_update
from tests.factories import OfficerFactory

pytestmark = pytest.mark.django_db

STRANGER_ID = 777_000_111


def test_a_wrong_or_missing_secret_is_403_and_nothing_is_stored_or_sent(telegram, post_update):
    for secret in ("wrong-secret", None, SECRET[:-1], ""):
        response = post_update(text_update(from_id=STRANGER_ID, text="/help"), secret=secret)
        assert response.status_code == 403
        assert response.json() == {"ok": False, "detail": "wrong secret token"}
    assert TelegramUpdate.objects.count() == 0
    assert telegram.sent() == []


def test_without_a_configured_secret_every_post_is_refused(telegram, post_update, settings):
    settings.TELEGRAM_WEBHOOK_SECRET = ""
    assert post_update(text_update(from_id=STRANGER_ID, text="/help"), secret="").status_code == 403
    assert TelegramUpdate.objects.count() == 0


def test_a_stranger_is_refused_politely_and_gets_no_data(telegram, post_update):
    data = text_update(from_id=STRANGER_ID, text="/pending")
    response = post_update(data)
    assert (response.status_code, response.json()) == (200, {"ok": True})
    [call] = telegram.sent()
    assert (call.method, call.params["chat_id"], call.params["text"]) == (
        "sendMessage",
        STRANGER_ID,
        texts.STRANGER,
    )
    row = TelegramUpdate.objects.get()
    assert (row.update_id, row.status, row.redeliveries) == (data["update_id"], "processed", 0)
    assert row.body and '"/pending"' in row.body


def test_a_redelivered_update_is_acknowledged_and_ignored(telegram, post_update):
    data = text_update(from_id=STRANGER_ID, text="/help")
    assert post_update(data).json() == {"ok": True}
    again = post_update(data)
    assert (again.status_code, again.json()) == (200, {"ok": True, "duplicate": True})
    assert len(telegram.sent("sendMessage")) == 1
    row = TelegramUpdate.objects.get()
    assert (row.status, row.redeliveries) == ("processed", 1)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"message": {}}',
        b'{"update_id": "12"}',
        b'{"update_id": true}',
        b'{"update_id": 5, "message": {"chat": 3}}',
    ],
)
def test_a_malformed_body_is_400_and_kept(telegram, post_update, body):
    response = post_update(body)
    assert (response.status_code, response.json()) == (400, {"ok": False, "detail": "not a Telegram update"})
    row = TelegramUpdate.objects.get()
    assert (row.status, row.update_id, row.body) == ("malformed", None, body.decode())
    assert telegram.sent() == []


def test_an_oversized_body_is_413_kept_unread(telegram, post_update):
    response = post_update(b'{"update_id": 1, "x": "' + b"a" * 70_000 + b'"}')
    assert response.status_code == 413
    assert response.json() == {"ok": False, "detail": "an update is at most 65536 bytes"}
    row = TelegramUpdate.objects.get()
    assert (row.status, row.body) == ("oversized", "")
    assert "70" in row.error and "not read" in row.error
    assert "X-Telegram-Bot-Api-Secret-Token" not in row.headers


def test_only_post(client, telegram):
    assert client.get("/bots/telegram/").status_code == 405


# --- linking -------------------------------------------------------------------------------------
def make_code(user: User) -> str:
    code, link_url = user_telegram_code_create(user=user, actor=Actor.system("tests"))
    assert link_url == f"https://t.me/haven_test_bot?start={code}"
    return code


def test_linking_with_a_code_works_once(telegram, post_update):
    officer = OfficerFactory(first_name="Wanjiru", last_name="Kamau")
    code = make_code(officer)
    assert len(code) <= 64 and code.replace("-", "").replace("_", "").isalnum()
    post_update(text_update(from_id=4242, text=f"/start {code}"))
    officer.refresh_from_db()
    assert (officer.telegram_user_id, officer.telegram_chat_id, officer.telegram_unreachable) == (
        4242,
        4242,
        False,
    )
    assert officer.telegram_link_code_digest is None
    assert telegram.sent()[-1].params["text"] == texts.linked("Wanjiru Kamau")
    assert AuditEvent.objects.filter(action="staff.telegram_linked", actor_user=officer).count() == 1

    # The same code from someone else: refused, nothing changes.
    post_update(text_update(from_id=5353, text=f"/start {code}"))
    assert telegram.sent()[-1].params == {"chat_id": 5353, "text": texts.LINK_FAILED}
    officer.refresh_from_db()
    assert officer.telegram_user_id == 4242
    assert AuditEvent.objects.filter(action="staff.telegram_link_refused").count() == 1


def test_an_expired_or_wrong_code_links_nobody(telegram, post_update):
    officer = OfficerFactory()
    code = make_code(officer)
    User.objects.filter(pk=officer.pk).update(
        telegram_link_code_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    post_update(text_update(from_id=4242, text=f"/start {code}"))
    post_update(text_update(from_id=4242, text="/start not-a-real-code-at-all"))
    assert [c.params["text"] for c in telegram.sent()] == [texts.LINK_FAILED, texts.LINK_FAILED]
    officer.refresh_from_db()
    assert officer.telegram_user_id is None
    # The expired code was used up by the attempt: it cannot be tried again later.
    assert officer.telegram_link_code_digest is None


def test_a_new_code_replaces_the_old_one_and_relinking_clears_unreachable(telegram, post_update):
    officer = link(OfficerFactory(), 4242)
    User.objects.filter(pk=officer.pk).update(telegram_unreachable=True)
    old, new = make_code(officer), make_code(officer)
    post_update(text_update(from_id=4242, text=f"/start {old}"))
    assert telegram.sent()[-1].params["text"] == texts.LINK_FAILED
    post_update(text_update(from_id=4242, text=f"/start {new}"))
    officer.refresh_from_db()
    assert (officer.telegram_user_id, officer.telegram_unreachable) == (4242, False)


def test_inactive_staff_cannot_get_or_use_a_code(telegram, post_update):
    officer = OfficerFactory()
    code = make_code(officer)
    User.objects.filter(pk=officer.pk).update(is_active=False)
    post_update(text_update(from_id=4242, text=f"/start {code}"))
    assert telegram.sent()[-1].params["text"] == texts.LINK_FAILED


def test_group_chats_are_ignored(telegram, post_update):
    link(OfficerFactory(), 4242)
    post_update(text_update(from_id=4242, chat_id=-100123, chat_type="group", text="/pending"))
    assert telegram.sent() == []
    assert TelegramUpdate.objects.get().status == "processed"


def test_an_unreachable_broker_still_acknowledges_the_stored_update(telegram, post_update, monkeypatch):
    from kombu.exceptions import OperationalError

    from bots.tasks import telegram_update_task

    def broker_down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(telegram_update_task, "delay", broker_down)
    data = text_update(from_id=STRANGER_ID, text="/help")
    assert post_update(data).json() == {"ok": True}
    assert TelegramUpdate.objects.get().status == "received"  # the sweeper's to handle
    assert telegram.sent() == []
