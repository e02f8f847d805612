"""Alerts with buttons, end to end: the engine queues a staff alert, the outbox's telegram sender
shows it in the fake Bot API, taps come back through the webhook and act through the payment
services; resolution anywhere edits the alert."""

import datetime
from decimal import Decimal as D

import pytest
from django.utils import timezone

from bots import texts
from bots.models import AlertMessage, CallbackAction, PaymentAlert, TelegramUpdate
from bots.tasks import sweep_task
from core.actors import Actor
from core.models import AuditEvent, Loan, OutboxMessage
from core.phones import msisdn_hash
from payments.models import MpesaTransaction
from payments.services import transaction_assign, transaction_process, transaction_reprocess
from tests.bots.conftest import link, tap_update, text_update
from tests.factories import AdminFactory, BorrowerFactory, LoanFactory, OfficerFactory
from tests.payments.test_monitoring import MINUTE, T
from tests.payments.test_monitoring import payment as monitored_payment
from tests.payments.test_monitoring import run as run_ops_checks
from tests.payments.test_processing import stored_payment

pytestmark = pytest.mark.django_db

ADMIN_TG = 1001
OTHER_ADMIN_TG = 1002
OFFICER_TG = 2001
STRANGER_TG = 9999


@pytest.fixture
def admin(telegram):
    return link(AdminFactory(username="amina", phone="+254700000001"), ADMIN_TG)


@pytest.fixture
def process(django_capture_on_commit_callbacks):
    """Process a stored payment as the engine does; the outbox drains on commit (to the fake)."""

    def run(tx: MpesaTransaction) -> MpesaTransaction:
        with django_capture_on_commit_callbacks(execute=True):
            return transaction_process(trans_id=tx.trans_id)

    return run


def unmatched(mpesa_config, process, trans_id="RKL51ZDR4F", reference="rent money"):
    tx = process(stored_payment(mpesa_config, trans_id=trans_id, bill_reference=reference))
    assert tx.status == "unmatched"
    return tx


def overpaid(mpesa_config, process, borrower) -> MpesaTransaction:
    """A payment from ``borrower`` (phone +254722000000, no active loan): posted to credit, alerted."""
    LoanFactory(borrower=borrower, loan_number="LOAN-000050", status=Loan.Status.WRITTEN_OFF)
    tx = process(stored_payment(mpesa_config, msisdn=msisdn_hash("+254722000000"), msisdn_kind="hashed"))
    assert (tx.status, tx.match_strategy) == ("processed", "credit")
    return tx


def alert_in(telegram, chat_id):
    """The alert message in ``chat_id``: (message id, what it shows, its buttons by label)."""
    message_id, shown = telegram.last_message(chat_id)
    return message_id, shown, dict(telegram.buttons(chat_id, message_id))


def tap(post_update, from_id, data, chat_id, message_id):
    return post_update(tap_update(from_id=from_id, data=data, chat_id=chat_id, message_id=message_id))


def answers(telegram):
    return [call.params["text"] for call in telegram.sent("answerCallbackQuery")]


# --- the alert -------------------------------------------------------------------------------------
def test_an_unmatched_payment_alerts_linked_staff_on_telegram_with_buttons(
    mpesa_config, process, admin, telegram
):
    sms_officer = AdminFactory(phone="+254700000009")  # not linked: keeps SMS
    tx = unmatched(mpesa_config, process)

    message_id, shown, buttons = alert_in(telegram, ADMIN_TG)
    text = shown["text"]
    assert text.startswith(
        "Unmatched payment: RKL51ZDR4F\nKES 1,000.00 paid 20 Nov 2026 12:13\nPayer: NICHOLAS"
    )
    assert "Account: 'rent money'" in text
    assert "What the matcher tried:" in text and tx.notes[0] in text
    assert "http://127.0.0.1:8000/payments/transactions/RKL51ZDR4F/" in text
    assert list(buttons) == ["Reprocess", "Assign…", "Mark reviewed"]
    assert all(len(data.encode()) <= 64 for data in buttons.values())
    assert set(CallbackAction.objects.values_list("token", flat=True)) == set(buttons.values())

    alert = PaymentAlert.objects.get()
    assert (alert.trans_id, alert.kind, alert.resolved_at) == ("RKL51ZDR4F", "unmatched", None)
    assert list(alert.messages.values_list("chat_id", "message_id")) == [(ADMIN_TG, message_id)]
    outbox = OutboxMessage.objects.get(channel="telegram")
    assert (outbox.recipient, outbox.status, outbox.provider_id) == (str(ADMIN_TG), "sent", str(message_id))
    assert OutboxMessage.objects.get(channel="sms").recipient == sms_officer.phone


def test_one_alert_per_payment_and_kind_however_often_it_repeats(
    mpesa_config, process, admin, telegram, django_capture_on_commit_callbacks
):
    tx = unmatched(mpesa_config, process)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            tx = transaction_reprocess(trans_id=tx.trans_id, actor=Actor.system("tests"))
        assert tx.status == "unmatched"
    assert OutboxMessage.objects.filter(channel="telegram").count() == 3  # the engine reported it 3 times
    assert len(telegram.sent("sendMessage", chat_id=ADMIN_TG)) == 1
    assert AlertMessage.objects.count() == 1


def test_a_blocked_chat_marks_the_staff_member_unreachable_and_falls_back_to_sms(
    mpesa_config, process, admin, telegram
):
    telegram.blocked_chats.add(ADMIN_TG)
    unmatched(mpesa_config, process)
    admin.refresh_from_db()
    assert admin.telegram_unreachable
    failed = OutboxMessage.objects.get(channel="telegram")
    assert failed.status == "failed" and "blocked" in failed.last_error
    sms = OutboxMessage.objects.get(channel="sms")
    assert (sms.recipient, sms.body, sms.status) == (admin.phone, failed.body, "sent")
    assert AlertMessage.objects.count() == 0
    # The next alert goes straight to SMS.
    unmatched(mpesa_config, process, trans_id="RKL51ZDR4G")
    assert OutboxMessage.objects.filter(channel="sms").count() == 2
    assert OutboxMessage.objects.filter(channel="telegram").count() == 1


# --- taps --------------------------------------------------------------------------------------------
def test_mark_reviewed_end_to_end_and_a_second_tap_changes_nothing(
    mpesa_config, process, admin, telegram, post_update
):
    unmatched(mpesa_config, process)
    message_id, _, buttons = alert_in(telegram, ADMIN_TG)

    tap(post_update, ADMIN_TG, buttons["Mark reviewed"], ADMIN_TG, message_id)

    tx = MpesaTransaction.objects.get()
    assert tx.reviewed_by == admin and tx.reviewed_at is not None
    assert answers(telegram)[0].startswith("✅ Marked reviewed by amina,")
    shown = telegram.shown(ADMIN_TG, message_id)
    assert "✅ Marked reviewed by amina," in shown["text"] and not shown.get("reply_markup")
    assert AuditEvent.objects.filter(action="mpesa.reviewed", actor_user=admin).count() == 1
    assert PaymentAlert.objects.get().resolved_at is not None

    reviewed_at = tx.reviewed_at
    tap(post_update, ADMIN_TG, buttons["Mark reviewed"], ADMIN_TG, message_id)
    tap(post_update, ADMIN_TG, buttons["Reprocess"], ADMIN_TG, message_id)
    assert answers(telegram)[1].startswith("Already done: ✅ Marked reviewed by amina")
    assert answers(telegram)[2].startswith("Already resolved. ✅ Marked reviewed by amina")
    tx.refresh_from_db()
    assert (tx.reviewed_at, tx.status) == (reviewed_at, "unmatched")
    assert AuditEvent.objects.filter(action="mpesa.reviewed").count() == 1
    assert AuditEvent.objects.filter(action="mpesa.reprocessed").count() == 0


def test_reprocess_end_to_end(mpesa_config, process, admin, telegram, post_update):
    unmatched(mpesa_config, process, reference="LOAN-000777")
    message_id, _, buttons = alert_in(telegram, ADMIN_TG)
    loan = LoanFactory(loan_number="LOAN-000777", principal=D("5000"), principal_disbursed=D("5000"))

    tap(post_update, ADMIN_TG, buttons["Reprocess"], ADMIN_TG, message_id)

    tx = MpesaTransaction.objects.get()
    loan.refresh_from_db()
    assert (tx.status, loan.principal) == ("processed", D("4000.00"))
    assert answers(telegram) == [texts.fit(answers(telegram)[0], 200)]
    assert answers(telegram)[0].startswith("✅ Reprocessed (now processed) by amina,")
    shown = telegram.shown(ADMIN_TG, message_id)
    assert "✅ Reprocessed (now processed) by amina" in shown["text"] and not shown.get("reply_markup")
    assert AuditEvent.objects.filter(action="mpesa.reprocessed", actor_user=admin).count() == 1


def test_reprocess_that_still_cannot_match_keeps_the_alert_open_with_fresh_buttons(
    mpesa_config, process, admin, telegram, post_update
):
    unmatched(mpesa_config, process)
    message_id, _, buttons = alert_in(telegram, ADMIN_TG)
    tap(post_update, ADMIN_TG, buttons["Reprocess"], ADMIN_TG, message_id)
    _, shown, fresh = alert_in(telegram, ADMIN_TG)
    assert "✅ Reprocessed (now unmatched) by amina" in shown["text"]
    assert list(fresh) == ["Reprocess", "Assign…", "Mark reviewed"]
    assert set(fresh.values()).isdisjoint(buttons.values())
    # The old buttons no longer work; the new ones do.
    tap(post_update, ADMIN_TG, buttons["Mark reviewed"], ADMIN_TG, message_id)
    assert answers(telegram)[-1] == texts.TAP_EXPIRED
    tap(post_update, ADMIN_TG, fresh["Mark reviewed"], ADMIN_TG, message_id)
    assert MpesaTransaction.objects.get().reviewed_by == admin


def test_forged_and_expired_tokens_do_nothing_and_are_audited(
    mpesa_config, process, admin, telegram, post_update
):
    unmatched(mpesa_config, process)
    message_id, _, buttons = alert_in(telegram, ADMIN_TG)
    tap(post_update, ADMIN_TG, "x" * 64, ADMIN_TG, message_id)
    token = buttons["Reprocess"]
    tap(post_update, ADMIN_TG, token[:-1] + ("B" if token.endswith("A") else "A"), ADMIN_TG, message_id)
    CallbackAction.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    tap(post_update, ADMIN_TG, buttons["Mark reviewed"], ADMIN_TG, message_id)
    assert answers(telegram) == [texts.TAP_INVALID, texts.TAP_INVALID, texts.TAP_EXPIRED]
    assert MpesaTransaction.objects.get().reviewed_at is None
    refused = AuditEvent.objects.filter(action="telegram.tap_refused", actor_user=admin)
    assert [e.reason for e in refused.order_by("id")] == [
        texts.TAP_INVALID,
        texts.TAP_INVALID,
        texts.TAP_EXPIRED,
    ]


def test_a_stranger_tapping_gets_nothing_and_is_audited(mpesa_config, process, admin, telegram, post_update):
    unmatched(mpesa_config, process)
    message_id, _, buttons = alert_in(telegram, ADMIN_TG)
    tap(post_update, STRANGER_TG, buttons["Mark reviewed"], ADMIN_TG, message_id)
    assert answers(telegram) == [texts.TAP_STRANGER]
    assert MpesaTransaction.objects.get().reviewed_at is None
    event = AuditEvent.objects.get(action="telegram.tap_refused")
    assert (event.actor_type, event.actor_label) == ("system", f"telegram-user:{STRANGER_TG}")
    assert telegram.shown(ADMIN_TG, message_id)["reply_markup"]  # the alert is untouched


def test_an_officer_outside_their_portfolio_is_refused(mpesa_config, process, admin, telegram, post_update):
    officer = link(OfficerFactory(username="otieno"), OFFICER_TG)
    overpaid(mpesa_config, process, BorrowerFactory(phones=["+254722000000"], loan_officer=AdminFactory()))
    message_id, _, buttons = alert_in(telegram, ADMIN_TG)
    # The officer taps the admin's alert (e.g. forwarded into a group): the tapper is checked.
    tap(post_update, OFFICER_TG, buttons["Mark reviewed"], ADMIN_TG, message_id)
    assert answers(telegram) == [texts.TAP_OUTSIDE_PORTFOLIO]
    assert MpesaTransaction.objects.get().reviewed_at is None
    assert AuditEvent.objects.get(action="telegram.tap_refused").actor_user == officer


def test_assign_offers_the_borrowers_loans_and_moves_money_only_after_the_same_persons_confirm(
    mpesa_config, process, admin, telegram, post_update
):
    link(AdminFactory(username="baraka"), OTHER_ADMIN_TG)
    borrower = BorrowerFactory(phones=["+254722000000"], full_name="Nicholas Kiprono")
    tx = overpaid(mpesa_config, process, borrower)
    alert_id, shown, buttons = alert_in(telegram, ADMIN_TG)
    assert shown["text"].startswith("Overpayment held as credit: RKL51ZDR4F")
    assert list(buttons) == ["Assign…", "Mark reviewed"]  # a posted payment is not reprocessed
    new_loan = LoanFactory(
        borrower=borrower, loan_number="LOAN-000060", principal=D("3000"), principal_disbursed=D("3000")
    )

    tap(post_update, ADMIN_TG, buttons["Assign…"], ADMIN_TG, alert_id)
    choose_id, shown, choices = alert_in(telegram, ADMIN_TG)
    assert shown["text"] == "Assign RKL51ZDR4F (KES 1,000.00) to which loan?"
    assert list(choices) == ["LOAN-000060 · KES 3,000.00", "Another loan number…", "Cancel"]

    tap(post_update, ADMIN_TG, choices["LOAN-000060 · KES 3,000.00"], ADMIN_TG, choose_id)
    shown = telegram.shown(ADMIN_TG, choose_id)
    assert shown["text"].startswith(
        "Assign RKL51ZDR4F (KES 1,000.00) to LOAN-000060 (Nicholas Kiprono, outstanding KES 3,000.00)?"
    )
    confirm = dict(telegram.buttons(ADMIN_TG, choose_id))
    assert list(confirm) == ["Confirm", "Cancel"]
    new_loan.refresh_from_db()
    assert new_loan.principal == D("3000.00")  # nothing moved yet

    tap(post_update, OTHER_ADMIN_TG, confirm["Confirm"], ADMIN_TG, choose_id)
    assert answers(telegram)[-1] == texts.TAP_NOT_YOURS
    new_loan.refresh_from_db()
    assert new_loan.principal == D("3000.00")

    tap(post_update, ADMIN_TG, confirm["Confirm"], ADMIN_TG, choose_id)
    new_loan.refresh_from_db()
    tx.refresh_from_db()
    assert (new_loan.principal, tx.match_strategy, tx.reviewed_by) == (D("2000.00"), "manual", admin)
    assert answers(telegram)[-1].startswith("✅ Assigned to LOAN-000060 by amina,")
    assert telegram.shown(ADMIN_TG, choose_id)["text"].startswith("✅ Assigned to LOAN-000060 by amina,")
    alert_shown = telegram.shown(ADMIN_TG, alert_id)
    assert "✅ Assigned to LOAN-000060 by amina" in alert_shown["text"] and not alert_shown.get(
        "reply_markup"
    )
    assert AuditEvent.objects.filter(action="mpesa.assigned", actor_user=admin).count() == 1

    # A second Confirm: already done, nothing moves twice.
    tap(post_update, ADMIN_TG, confirm["Confirm"], ADMIN_TG, choose_id)
    assert answers(telegram)[-1].startswith("Already")
    new_loan.refresh_from_db()
    assert new_loan.principal == D("2000.00")


def test_assign_without_a_known_borrower_asks_for_a_loan_number_by_reply(
    mpesa_config, process, telegram, post_update
):
    officer = link(OfficerFactory(username="otieno"), OFFICER_TG)
    mine = LoanFactory(
        loan_number="LOAN-000123",
        borrower=BorrowerFactory(loan_officer=officer),
        principal=D("5000"),
        principal_disbursed=D("5000"),
    )
    LoanFactory(loan_number="LOAN-000124", borrower=BorrowerFactory(loan_officer=OfficerFactory()))
    admin = link(AdminFactory(username="amina"), ADMIN_TG)
    unmatched(mpesa_config, process)
    alert_id, _, buttons = alert_in(telegram, ADMIN_TG)

    tap(post_update, ADMIN_TG, buttons["Assign…"], ADMIN_TG, alert_id)
    prompt_id, prompt = telegram.last_message(ADMIN_TG)
    assert prompt["text"].startswith("Reply to this message with the loan number for RKL51ZDR4F")
    assert prompt["reply_markup"]["force_reply"] is True

    # The whole number, as on every staff channel: a loose reading of a typo could be another loan.
    post_update(text_update(from_id=ADMIN_TG, text="loan 123", reply_to=prompt_id))
    assert telegram.last_message(ADMIN_TG)[1]["text"].startswith("No loan 'loan 123' in your portfolio.")
    post_update(text_update(from_id=ADMIN_TG, text="loan-000123", reply_to=prompt_id))
    confirm_id, shown = telegram.last_message(ADMIN_TG)
    assert "to LOAN-000123" in shown["text"]
    confirm = dict(telegram.buttons(ADMIN_TG, confirm_id))
    mine.refresh_from_db()
    assert mine.principal == D("5000.00")

    tap(post_update, ADMIN_TG, confirm["Confirm"], ADMIN_TG, confirm_id)
    mine.refresh_from_db()
    assert mine.principal == D("4000.00")
    assert MpesaTransaction.objects.get().reviewed_by == admin
    assert PaymentAlert.objects.get().resolved_at is not None


def test_an_officer_cannot_assign_to_a_loan_outside_their_portfolio(
    mpesa_config, process, telegram, post_update
):
    officer = link(OfficerFactory(username="otieno"), OFFICER_TG)
    LoanFactory(loan_number="LOAN-000124", borrower=BorrowerFactory(loan_officer=OfficerFactory()))
    overpaid(mpesa_config, process, BorrowerFactory(phones=["+254722000000"], loan_officer=officer))
    alert_id, _, buttons = alert_in(telegram, OFFICER_TG)

    tap(post_update, OFFICER_TG, buttons["Assign…"], OFFICER_TG, alert_id)
    prompt_id, _ = telegram.last_message(OFFICER_TG)
    post_update(text_update(from_id=OFFICER_TG, text="LOAN-000124", reply_to=prompt_id))
    _, shown = telegram.last_message(OFFICER_TG)
    assert shown["text"] == "No loan 'LOAN-000124' in your portfolio. Reply to the question again."
    assert not telegram.buttons(OFFICER_TG, telegram.last_message(OFFICER_TG)[0])
    assert AuditEvent.objects.get(action="telegram.loan_reply_refused").actor_user == officer
    assert MpesaTransaction.objects.get().match_strategy == "credit"


def test_cancel_ends_an_assignment_without_moving_money(mpesa_config, process, admin, telegram, post_update):
    unmatched(mpesa_config, process)
    LoanFactory(loan_number="LOAN-000123")
    alert_id, _, buttons = alert_in(telegram, ADMIN_TG)
    tap(post_update, ADMIN_TG, buttons["Assign…"], ADMIN_TG, alert_id)
    prompt_id, _ = telegram.last_message(ADMIN_TG)
    post_update(text_update(from_id=ADMIN_TG, text="LOAN-000123", reply_to=prompt_id))
    confirm_id, _ = telegram.last_message(ADMIN_TG)
    confirm = dict(telegram.buttons(ADMIN_TG, confirm_id))
    tap(post_update, ADMIN_TG, confirm["Cancel"], ADMIN_TG, confirm_id)
    assert telegram.shown(ADMIN_TG, confirm_id)["text"] == texts.TAP_CANCELLED
    tap(post_update, ADMIN_TG, confirm["Confirm"], ADMIN_TG, confirm_id)
    assert answers(telegram)[-1] == "Already done: cancelled"
    assert MpesaTransaction.objects.get().status == "unmatched"


# --- resolution elsewhere ---------------------------------------------------------------------------
def test_a_payment_resolved_elsewhere_has_its_alert_edited_and_its_buttons_refuse(
    mpesa_config, process, admin, telegram, post_update
):
    other = AdminFactory(username="wanjiku")
    link(AdminFactory(username="baraka"), OTHER_ADMIN_TG)
    LoanFactory(loan_number="LOAN-000123")
    unmatched(mpesa_config, process)
    alert_id, _, buttons = alert_in(telegram, ADMIN_TG)
    other_alert_id, _, _ = alert_in(telegram, OTHER_ADMIN_TG)

    transaction_assign(trans_id="RKL51ZDR4F", loan_number="LOAN-000123", actor=Actor.staff(other))
    assert sweep_task() == 1

    for chat_id, message_id in ((ADMIN_TG, alert_id), (OTHER_ADMIN_TG, other_alert_id)):
        shown = telegram.shown(chat_id, message_id)
        assert "☑️ Resolved elsewhere: assigned to LOAN-000123 by wanjiku," in shown["text"]
        assert not shown.get("reply_markup")
    assert sweep_task() == 0  # edited once

    tap(post_update, ADMIN_TG, buttons["Reprocess"], ADMIN_TG, alert_id)
    assert answers(telegram)[-1].startswith("Already resolved. ☑️ Resolved elsewhere: assigned to LOAN-000123")
    assert AuditEvent.objects.filter(action="mpesa.reprocessed").count() == 0


def test_a_tap_before_the_sweeper_noticed_says_resolved_and_edits(
    mpesa_config, process, admin, telegram, post_update
):
    other = AdminFactory(username="wanjiku")
    unmatched(mpesa_config, process)
    alert_id, _, buttons = alert_in(telegram, ADMIN_TG)
    from payments.services import transaction_mark_reviewed

    transaction_mark_reviewed(trans_id="RKL51ZDR4F", actor=Actor.staff(other))
    tap(post_update, ADMIN_TG, buttons["Mark reviewed"], ADMIN_TG, alert_id)
    assert answers(telegram)[-1].startswith("Already resolved: reviewed by wanjiku")
    assert "☑️ Resolved elsewhere: reviewed by wanjiku" in telegram.shown(ADMIN_TG, alert_id)["text"]
    refusal = AuditEvent.objects.get(action="telegram.tap_refused")
    assert (refusal.actor_user, refusal.reason[:28]) == (admin, "Already resolved: reviewed b")
    assert AuditEvent.objects.filter(action="mpesa.reviewed").count() == 1


def test_updates_are_processed_and_recorded(mpesa_config, process, admin, telegram, post_update):
    unmatched(mpesa_config, process)
    alert_id, _, buttons = alert_in(telegram, ADMIN_TG)
    tap(post_update, ADMIN_TG, buttons["Mark reviewed"], ADMIN_TG, alert_id)
    row = TelegramUpdate.objects.get()
    assert row.status == "processed" and row.processed_at is not None


def test_confirm_refuses_a_loan_that_left_the_officers_portfolio_since_it_was_chosen(
    mpesa_config, process, telegram, post_update
):
    officer = link(OfficerFactory(username="otieno"), OFFICER_TG)
    target = LoanFactory(borrower=BorrowerFactory(loan_officer=officer), loan_number="LOAN-000070")
    overpaid(mpesa_config, process, BorrowerFactory(phones=["+254722000000"], loan_officer=officer))
    alert_id, _, buttons = alert_in(telegram, OFFICER_TG)
    tap(post_update, OFFICER_TG, buttons["Assign…"], OFFICER_TG, alert_id)
    prompt_id, _ = telegram.last_message(OFFICER_TG)
    post_update(text_update(from_id=OFFICER_TG, text="LOAN-000070", reply_to=prompt_id))
    confirm_id, _ = telegram.last_message(OFFICER_TG)
    confirm = dict(telegram.buttons(OFFICER_TG, confirm_id))

    other = OfficerFactory()
    Loan.objects.filter(pk=target.pk).update(loan_officer=other)
    target.borrower.loan_officer = other
    target.borrower.save(update_fields=["loan_officer"])
    tap(post_update, OFFICER_TG, confirm["Confirm"], OFFICER_TG, confirm_id)

    assert answers(telegram)[-1] == "Could not confirm: no loan numbered LOAN-000070"
    assert MpesaTransaction.objects.get().match_strategy == "credit"
    assert AuditEvent.objects.get(action="telegram.tap_failed").actor_user == officer


# --- operational alerts ------------------------------------------------------------------------------
def test_an_ops_alert_goes_to_a_linked_admin_on_telegram_and_to_others_by_sms(
    mpesa_config, admin, telegram, django_capture_on_commit_callbacks
):
    sms_admin = AdminFactory(phone="+254700000009")  # not linked: SMS
    link(OfficerFactory(username="otieno", phone="+254700000008"), OFFICER_TG)  # not an admin: not told

    def check(now: datetime.datetime) -> list[tuple[str, bool]]:
        # The checks on a held clock, as beat runs them; the outbox drains on commit (to the fake).
        with django_capture_on_commit_callbacks(execute=True):
            return run_ops_checks(now)

    waiting = monitored_payment(mpesa_config, received_at=T, status="received")
    assert check(T + datetime.timedelta(seconds=121)) == [("backlog", False)]
    assert check(T + 5 * MINUTE) == []  # still waiting: the same episode, nothing more said
    MpesaTransaction.objects.filter(pk=waiting.pk).update(status="processed")
    assert check(T + 7 * MINUTE) == [("backlog", True)]
    assert check(T + 8 * MINUTE) == []

    opened = (
        "ALERT: 1 payment(s) waiting to be posted, the oldest for 121 s (limit 120 s): "
        "the payment worker is down or behind."
    )
    resolved = (
        "RESOLVED after 5 min: The payment worker has caught up: no payment has waited more than 120 s."
    )
    shown = [call.params["text"] for call in telegram.sent("sendMessage")]
    assert shown == [opened, resolved]
    assert {call.params["chat_id"] for call in telegram.sent()} == {ADMIN_TG}
    telegram_rows = OutboxMessage.objects.filter(channel="telegram").order_by("id")
    assert [(row.recipient, row.user, row.status, row.context) for row in telegram_rows] == [
        (str(ADMIN_TG), admin, "sent", {"kind": "ops", "alert": "backlog"})
    ] * 2
    sms_rows = OutboxMessage.objects.filter(channel="sms").order_by("id")
    assert [(row.recipient, row.user, row.body, row.status) for row in sms_rows] == [
        (sms_admin.phone, sms_admin, opened, "sent"),
        (sms_admin.phone, sms_admin, resolved, "sent"),
    ]
