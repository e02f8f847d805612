"""Commands of linked staff: /help, /pending, /find, /stats; and the daily digest."""

import datetime
from decimal import Decimal as D

import pytest
from django.conf import settings
from django.utils import timezone

from bots import texts
from bots.models import AlertMessage
from bots.tasks import daily_digest_task
from core.models import OutboxMessage, User
from payments.models import BalanceGap, MpesaTransaction
from payments.parsing import NAIROBI
from tests.bots.conftest import link, text_update
from tests.factories import AdminFactory, BorrowerFactory, LoanFactory, OfficerFactory
from tests.payments.test_processing import stored_payment

pytestmark = pytest.mark.django_db

ADMIN_TG = 1001
OFFICER_TG = 2001


@pytest.fixture
def admin(telegram):
    return link(AdminFactory(username="amina"), ADMIN_TG)


def say(post_update, telegram, from_id: int, text: str) -> list[str]:
    before = len(telegram.sent("sendMessage", chat_id=from_id))
    post_update(text_update(from_id=from_id, text=text))
    return [call.params["text"] for call in telegram.sent("sendMessage", chat_id=from_id)[before:]]


def test_help_and_unknown(admin, telegram, post_update):
    assert say(post_update, telegram, ADMIN_TG, "/help") == [texts.HELP]
    assert say(post_update, telegram, ADMIN_TG, "/help@haven_test_bot") == [texts.HELP]
    assert say(post_update, telegram, ADMIN_TG, "/nonsense") == [texts.UNKNOWN]
    assert say(post_update, telegram, ADMIN_TG, "hello there") == [texts.UNKNOWN]


def test_pending_lists_open_payments_each_with_buttons(mpesa_config, admin, telegram, post_update):
    assert say(post_update, telegram, ADMIN_TG, "/pending") == [texts.NOTHING_PENDING]
    stored_payment(mpesa_config, trans_id="RKL51ZDR4A", status="unmatched", bill_reference="x")
    stored_payment(mpesa_config, trans_id="RKL51ZDR4B", status="failed", last_error="boom")
    stored_payment(mpesa_config, trans_id="RKL51ZDR4C", status="unmatched", reviewed_at=timezone.now())
    sent = say(post_update, telegram, ADMIN_TG, "/pending")
    assert [text.split("\n")[0] for text in sent] == [
        "Unmatched payment: RKL51ZDR4A",
        "Payment failed to post: RKL51ZDR4B",
    ]
    message_id, _ = telegram.last_message(ADMIN_TG)
    assert [label for label, _ in telegram.buttons(ADMIN_TG, message_id)] == [
        "Reprocess",
        "Assign…",
        "Mark reviewed",
    ]
    assert AlertMessage.objects.count() == 2
    # Asked again: sent again, and the new message is the one later edited.
    say(post_update, telegram, ADMIN_TG, "/pending")
    assert sorted(AlertMessage.objects.values_list("message_id", flat=True)) == sorted(
        m for m in telegram.chats[ADMIN_TG] if m > message_id
    )


def test_pending_shows_a_held_payment_as_held_without_reprocess(mpesa_config, admin, telegram, post_update):
    stored_payment(
        mpesa_config,
        trans_id="RKL51ZDR4H",
        status="held",
        amount=D("300000"),
        held_reason="amount KES 300,000.00 is over the M-Pesa maximum (KES 250,000.00)",
    )
    sent = say(post_update, telegram, ADMIN_TG, "/pending")
    assert [text.split("\n")[0] for text in sent] == ["Payment held for staff: RKL51ZDR4H"]
    message_id, _ = telegram.last_message(ADMIN_TG)
    # Reprocessing never releases a held payment: staff assign it or mark it reviewed.
    assert [label for label, _ in telegram.buttons(ADMIN_TG, message_id)] == ["Assign…", "Mark reviewed"]


def test_an_officer_sees_only_their_portfolio(mpesa_config, telegram, post_update):
    officer = link(OfficerFactory(), OFFICER_TG)
    mine = BorrowerFactory(loan_officer=officer, phones=["+254711000001"])
    theirs = BorrowerFactory(loan_officer=OfficerFactory(), phones=["+254711000002"])
    LoanFactory(borrower=mine, loan_number="LOAN-000001")
    LoanFactory(borrower=theirs, loan_number="LOAN-000002")
    stored_payment(mpesa_config, trans_id="RKL51ZDR4A", status="failed", borrower=mine)
    stored_payment(mpesa_config, trans_id="RKL51ZDR4B", status="failed", borrower=theirs)
    sent = say(post_update, telegram, OFFICER_TG, "/pending")
    assert [text.split("\n")[0] for text in sent] == ["Payment failed to post: RKL51ZDR4A"]
    assert say(post_update, telegram, OFFICER_TG, "/find RKL51ZDR4B") == [texts.NOT_FOUND]
    assert say(post_update, telegram, OFFICER_TG, "/find 0711000002") == [texts.NOT_FOUND]
    assert say(post_update, telegram, OFFICER_TG, "/find LOAN-000002") == [texts.NOT_FOUND]
    assert say(post_update, telegram, OFFICER_TG, "/find 2")[0] == texts.NOT_FOUND


def test_find_by_code_phone_and_loan(mpesa_config, admin, telegram, post_update):
    borrower = BorrowerFactory(full_name="Nicholas Kiprono", phones=["+254722000000"])
    LoanFactory(
        borrower=borrower,
        loan_number="LOAN-000123",
        principal=D("5000"),
        principal_disbursed=D("5000"),
        due_date=datetime.date(2026, 12, 30),
    )
    stored_payment(mpesa_config, trans_id="RKL51ZDR4F", status="processed", borrower=borrower)

    [found] = say(post_update, telegram, ADMIN_TG, "/find rkl51zdr4f")
    assert found.startswith("Payment: RKL51ZDR4F\nKES 1,000.00 paid 20 Nov 2026 12:13")
    assert say(post_update, telegram, ADMIN_TG, "/find 0722 000 000") == [
        "Nicholas Kiprono\n"
        "LOAN-000123 (Nicholas Kiprono): active, outstanding KES 5,000.00, due 30 Dec 2026\n"
        "RKL51ZDR4F: KES 1,000.00 20 Nov 2026 12:13 (processed)"
    ]
    assert say(post_update, telegram, ADMIN_TG, "/find loan 123") == [
        "LOAN-000123 (Nicholas Kiprono): active, outstanding KES 5,000.00, due 30 Dec 2026\n"
        "RKL51ZDR4F: KES 1,000.00 20 Nov 2026 12:13 (processed)"
    ]
    assert say(post_update, telegram, ADMIN_TG, "/find") == [texts.FIND_USAGE]
    assert say(post_update, telegram, ADMIN_TG, "/find nothing-like-this") == [texts.NOT_FOUND]


def _paid(config, trans_id, status, when, amount="1000"):
    return stored_payment(config, trans_id=trans_id, status=status, trans_time=when, amount=D(amount))


def test_stats_today(mpesa_config, admin, telegram, post_update):
    now = timezone.now()
    _paid(mpesa_config, "T1", "processed", now, "1500")
    _paid(mpesa_config, "T2", "unmatched", now, "500")
    _paid(mpesa_config, "T3", "failed", now - datetime.timedelta(days=3))
    assert say(post_update, telegram, ADMIN_TG, "/stats") == [
        "Today\nPayments: 2, KES 2,000.00\nMatched: 50%\nStill open: 1 unmatched, 1 failed"
    ]


def test_daily_digest_goes_once_to_each_linked_member_over_what_they_see(
    mpesa_config, admin, telegram, django_capture_on_commit_callbacks
):
    officer = link(OfficerFactory(), OFFICER_TG)
    unlinked = AdminFactory(phone="+254700000005")
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    noon = datetime.datetime.combine(yesterday, datetime.time(12), tzinfo=NAIROBI)
    first = _paid(mpesa_config, "Y1", "processed", noon, "1500")
    _paid(mpesa_config, "Y2", "processed", noon, "250")
    _paid(mpesa_config, "Y3", "unmatched", noon, "100")
    pulled = _paid(mpesa_config, "Y4", "processed", noon + datetime.timedelta(hours=1), "400")
    MpesaTransaction.objects.filter(pk=pulled.pk).update(source="pull")
    _paid(mpesa_config, "Y5", "held", noon, "300000")
    BalanceGap.objects.create(
        config=mpesa_config, from_transaction=first, to_transaction=pulled, gap=D("700")
    )
    _paid(mpesa_config, "T1", "processed", timezone.now(), "999")  # today: not in yesterday's digest

    with django_capture_on_commit_callbacks(execute=True):
        assert daily_digest_task() == 2
    title = f"Yesterday, {yesterday:%a %d %b %Y}"
    assert [c.params["text"] for c in telegram.sent("sendMessage", chat_id=ADMIN_TG)] == [
        f"{title}\nPayments: 5, KES 302,250.00\nMatched: 60%\nStill open: 1 unmatched, 0 failed, 1 held\n"
        "Recovered without a callback: 1 by pull transactions (KES 400.00)\n"
        "Balance gaps open: 1, KES 700.00 never seen"
    ]
    # The officer's portfolio had no payments, and balance gaps are the whole paybill's: not theirs.
    assert [c.params["text"] for c in telegram.sent("sendMessage", chat_id=OFFICER_TG)] == [
        f"{title}\nPayments: 0, KES 0.00\nMatched: n/a\nStill open: 0 unmatched, 0 failed\n"
        "Recovered without a callback: none"
    ]
    with django_capture_on_commit_callbacks(execute=True):
        assert daily_digest_task() == 0
    assert OutboxMessage.objects.filter(channel="telegram", status="sent").count() == 2
    assert not OutboxMessage.objects.filter(user=unlinked).exists()
    assert User.objects.get(pk=officer.pk).telegram_unreachable is False


def test_the_digest_is_scheduled_at_eight_nairobi_time():
    entry = settings.CELERY_BEAT_SCHEDULE["telegram-daily-digest"]
    assert entry["task"] == "bots.daily_digest"
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({8}, {0})
    assert settings.CELERY_TIMEZONE == "Africa/Nairobi"
    assert MpesaTransaction.objects.count() == 0


def test_no_digest_while_the_bot_is_off(admin, settings):
    settings.OUTBOX_SENDERS = {"sms": "ussd.senders.send_sms"}
    assert daily_digest_task() == 0
    assert not OutboxMessage.objects.exists()
