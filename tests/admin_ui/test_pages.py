"""The staff pages through Django's test client: who may see what, every action end to end, CSRF,
the list's filters and pages, the CSV export, the dashboard's figures and chart, the configuration
page's masking, URL registration and the test payment (refused in production)."""

import csv
import datetime
import io
import json
import re
from decimal import Decimal as D
from types import SimpleNamespace

import httpx
import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from admin_ui.charts import daily_volume_svg, nice_ceiling
from core.models import AuditEvent, Loan, User
from core.phones import msisdn_hash
from payments.clients.daraja import DarajaClient
from payments.models import Allocation, MpesaConfiguration, MpesaTransaction, ReviewRequest
from tests.admin_ui.conftest import OTHER_PHONE, OWN_PHONE, nairobi
from tests.factories import AdminFactory

pytestmark = pytest.mark.django_db

Status = MpesaTransaction.Status


def page_messages(response) -> list[str]:
    return [message.message for message in get_messages(response.wsgi_request)]


def detail_url(trans_id: str) -> str:
    return reverse("admin_ui:transaction-detail", kwargs={"trans_id": trans_id})


def action_url(action: str, trans_id: str) -> str:
    return reverse(f"admin_ui:transaction-{action}", kwargs={"trans_id": trans_id})


def listed(response) -> list[str]:
    """Receipt numbers linked from a page's payment table, in order."""
    return re.findall(r'href="/payments/transactions/([A-Z0-9]+)/"', response.content.decode())


def outstanding(loan: Loan) -> D:
    loan.refresh_from_db()
    return loan.outstanding


@pytest.fixture
def admin_user(db):
    return AdminFactory(username="boss")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def officer_client(officer, own_loan):
    officer_client = Client()
    officer_client.force_login(officer)
    return officer_client


@pytest.fixture
def payments(make_payment, own_loan, other_loan):
    """Processed payments in each officer's portfolio, and an unmatched one that is nobody's."""
    return SimpleNamespace(
        own=make_payment("QOWN000001", bill_reference="LOAN-000101", process=True),
        other=make_payment("QOTH000001", bill_reference="LOAN-000201", process=True),
        orphan=make_payment("QNONE00001", bill_reference="rent", process=True),
    )


# --- Who may see what ---------------------------------------------------------------------------

PAGES = [
    ("admin_ui:dashboard", {}),
    ("admin_ui:transaction-list", {}),
    ("admin_ui:transaction-export", {}),
    ("admin_ui:transaction-detail", {"trans_id": "QOWN000001"}),
    ("admin_ui:configuration", {}),
    ("admin_ui:test-payment", {}),
    ("admin_ui:reconciliation", {}),
    ("admin_ui:status-query", {}),
]
POSTS = [
    ("admin_ui:transaction-reprocess", {"trans_id": "QNONE00001"}, {"reprocess-confirm": "on"}),
    ("admin_ui:transaction-assign", {"trans_id": "QNONE00001"}, {"assign-loan_number": "LOAN-000101"}),
    ("admin_ui:transaction-review", {"trans_id": "QNONE00001"}, {}),
    ("admin_ui:transaction-reverse", {"trans_id": "QNONE00001"}, {"reverse-reason": "x"}),
    ("admin_ui:configuration-register", {}, {}),
    ("admin_ui:test-payment", {}, {"phone": OWN_PHONE, "amount": "10"}),
    ("admin_ui:status-query", {}, {"trans_id": "SAB7LQ2X9K"}),
]


@pytest.mark.parametrize(("name", "kwargs"), PAGES, ids=[name for name, _ in PAGES])
def test_anonymous_visitors_are_sent_to_the_admin_login(client, payments, name, kwargs):
    url = reverse(name, kwargs=kwargs)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.parametrize(("name", "kwargs"), PAGES, ids=[name for name, _ in PAGES])
def test_users_who_are_not_staff_are_sent_to_the_admin_login(client, payments, name, kwargs):
    clerk = User.objects.create_user("clerk", password="pass-word-123", is_staff=False)
    client.force_login(clerk)
    url = reverse(name, kwargs=kwargs)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.parametrize(("name", "kwargs", "data"), POSTS, ids=[name for name, _, _ in POSTS])
def test_anonymous_posts_change_nothing(client, payments, mpesa_config, name, kwargs, data):
    response = client.post(reverse(name, kwargs=kwargs), data)

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=")
    orphan = MpesaTransaction.objects.get(trans_id="QNONE00001")
    assert (orphan.status, orphan.reviewed_at, orphan.allocations.count()) == (Status.UNMATCHED, None, 0)
    assert not AuditEvent.objects.filter(actor_type="staff").exists()
    mpesa_config.refresh_from_db()
    assert mpesa_config.last_registration_at is None


def test_officer_sees_only_their_portfolio(officer_client, payments):
    assert officer_client.get(detail_url("QOWN000001")).status_code == 200
    assert officer_client.get(detail_url("QOTH000001")).status_code == 404
    assert officer_client.get(detail_url("QNONE00001")).status_code == 404  # identifies nobody: admins only
    assert officer_client.get(detail_url("NOSUCH0001")).status_code == 404

    assert listed(officer_client.get(reverse("admin_ui:transaction-list"))) == ["QOWN000001"]
    assert listed(officer_client.get(reverse("admin_ui:dashboard"))) == ["QOWN000001"]
    export = officer_client.get(reverse("admin_ui:transaction-export"))
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [row[0] for row in rows[1:]] == ["QOWN000001"]


ACTIONS = {
    "reprocess": {"reprocess-reason": "mine now", "reprocess-confirm": "on"},
    "assign": {"assign-loan_number": "LOAN-000101", "assign-reason": "mine now", "assign-confirm": "on"},
    "review": {"review-note": "mine now"},
    "reverse": {"reverse-reason": "mine now", "reverse-confirm": "on"},
}


@pytest.mark.parametrize("action", ACTIONS)
def test_officer_cannot_act_on_a_payment_outside_their_portfolio(
    officer_client, make_payment, other_borrower, other_loan, own_loan, action
):
    # Failed, unreviewed, of the other officer's borrower: every action would otherwise apply.
    make_payment(
        "QOTHFAIL01", bill_reference="LOAN-000201", borrower=other_borrower, status=Status.FAILED, attempts=1
    )

    response = officer_client.post(action_url(action, "QOTHFAIL01"), ACTIONS[action])

    assert response.status_code == 404
    tx = MpesaTransaction.objects.get(trans_id="QOTHFAIL01")
    assert (tx.status, tx.reviewed_at, tx.attempts, tx.notes) == (Status.FAILED, None, 1, [])
    assert not Allocation.objects.exists()
    assert (outstanding(own_loan), outstanding(other_loan)) == (D("5000.00"), D("8000.00"))
    assert not AuditEvent.objects.filter(actor_type="staff").exists()


def test_admin_sees_every_payment(admin_client, payments):
    assert set(listed(admin_client.get(reverse("admin_ui:transaction-list")))) == {
        "QOWN000001",
        "QOTH000001",
        "QNONE00001",
    }
    for trans_id in ("QOWN000001", "QOTH000001", "QNONE00001"):
        assert admin_client.get(detail_url(trans_id)).status_code == 200


# --- Actions --------------------------------------------------------------------------------------


def test_reprocess_posts_a_failed_payment(admin_client, admin_user, make_payment, own_loan):
    make_payment(
        "QFAIL00001", bill_reference="LOAN-000101", status=Status.FAILED, attempts=1, last_error="boom"
    )

    response = admin_client.post(
        action_url("reprocess", "QFAIL00001"), {"reprocess-reason": "fixed", "reprocess-confirm": "on"}
    )

    assert response.status_code == 302 and response["Location"] == detail_url("QFAIL00001")
    assert page_messages(response) == ["QFAIL00001 reprocessed: processed."]
    tx = MpesaTransaction.objects.get(trans_id="QFAIL00001")
    assert (tx.status, tx.borrower_id, tx.last_error) == (Status.PROCESSED, own_loan.borrower_id, "")
    assert outstanding(own_loan) == D("4000.00")
    event = AuditEvent.objects.get(action="mpesa.reprocessed")
    assert (event.actor_user, event.reason, event.data["status_before"]) == (admin_user, "fixed", "failed")


def test_reprocessing_asks_for_confirmation(admin_client, make_payment, own_loan):
    make_payment("QFAIL00001", bill_reference="LOAN-000101", status=Status.FAILED, attempts=1)
    page = admin_client.get(detail_url("QFAIL00001")).content.decode()

    response = admin_client.post(action_url("reprocess", "QFAIL00001"), {"reprocess-reason": "sure"})

    # The browser asks first (a required checkbox); the server checks again.
    reprocess_form = page.split('id="reprocess-form"')[1].split("</form>")[0]
    assert re.search(
        r'<input type="checkbox" name="reprocess-confirm" required id="id_reprocess-confirm">', reprocess_form
    )
    assert response.status_code == 302
    assert page_messages(response) == ["Tick “I confirm” to reprocess the payment."]
    tx = MpesaTransaction.objects.get(trans_id="QFAIL00001")
    assert (tx.status, tx.attempts) == (Status.FAILED, 1)
    assert outstanding(own_loan) == D("5000.00")
    assert not AuditEvent.objects.filter(action="mpesa.reprocessed").exists()


def test_reprocessing_a_processed_payment_is_refused_with_a_message(admin_client, payments, own_loan):
    response = admin_client.post(action_url("reprocess", "QOWN000001"), {"reprocess-confirm": "on"})

    assert response.status_code == 302
    assert page_messages(response) == [
        "QOWN000001 is processed; only received, failed or unmatched payments are reprocessed"
    ]
    assert outstanding(own_loan) == D("4000.00")
    assert not AuditEvent.objects.filter(action="mpesa.reprocessed").exists()


def test_assign_an_unmatched_payment_to_a_loan(admin_client, admin_user, payments, own_loan):
    response = admin_client.post(
        action_url("assign", "QNONE00001"),
        {"assign-loan_number": " LOAN-000101 ", "assign-reason": "called the payer", "assign-confirm": "on"},
    )

    assert response.status_code == 302 and response["Location"] == detail_url("QNONE00001")
    assert page_messages(response) == ["QNONE00001 assigned to LOAN-000101: processed."]
    tx = MpesaTransaction.objects.get(trans_id="QNONE00001")
    assert (tx.status, tx.match_strategy, tx.borrower_id, tx.reviewed_by) == (
        Status.PROCESSED,
        "manual",
        own_loan.borrower_id,
        admin_user,
    )
    assert outstanding(own_loan) == D("3000.00")  # 1000 from QOWN000001, 1000 from this one
    assert [(a.loan_id, a.amount) for a in tx.allocations.all()] == [(own_loan.pk, D("1000.00"))]
    assert AuditEvent.objects.get(action="mpesa.assigned").reason == "called the payer"


@pytest.mark.parametrize("typed", ["loan-000101", "  Loan-000101\t", "LOAN-000101"])
def test_assign_takes_the_loan_number_in_any_case(admin_client, payments, own_loan, typed):
    response = admin_client.post(
        action_url("assign", "QNONE00001"), {"assign-loan_number": typed, "assign-confirm": "on"}
    )

    assert page_messages(response) == ["QNONE00001 assigned to LOAN-000101: processed."]
    tx = MpesaTransaction.objects.get(trans_id="QNONE00001")
    assert (tx.status, tx.borrower_id) == (Status.PROCESSED, own_loan.borrower_id)
    assert [(a.loan_id, a.amount) for a in tx.allocations.all()] == [(own_loan.pk, D("1000.00"))]
    assert outstanding(own_loan) == D("3000.00")


@pytest.mark.parametrize("typed", ["LOAN-00010", "LOAN-0001011", "LOAN 000101", "000101"])
def test_assign_wants_the_whole_loan_number(admin_client, payments, own_loan, typed):
    response = admin_client.post(
        action_url("assign", "QNONE00001"), {"assign-loan_number": typed, "assign-confirm": "on"}
    )

    assert page_messages(response) == [f"no loan numbered {typed}"]
    assert MpesaTransaction.objects.get(trans_id="QNONE00001").status == Status.UNMATCHED
    assert outstanding(own_loan) == D("4000.00")


def test_assigning_asks_for_confirmation(admin_client, payments, own_loan):
    response = admin_client.post(
        action_url("assign", "QNONE00001"), {"assign-loan_number": "LOAN-000101", "assign-reason": "sure"}
    )

    assert response.status_code == 302
    assert page_messages(response) == ["Tick “I confirm” to move the money."]
    assert MpesaTransaction.objects.get(trans_id="QNONE00001").status == Status.UNMATCHED
    assert outstanding(own_loan) == D("4000.00")


def test_assigning_to_the_loan_it_is_already_on_is_a_message_and_changes_nothing(
    admin_client, payments, own_loan
):
    response = admin_client.post(
        action_url("assign", "QOWN000001"), {"assign-loan_number": "loan-000101", "assign-confirm": "on"}
    )

    assert page_messages(response) == ["QOWN000001 is already on LOAN-000101; nothing was changed"]
    assert outstanding(own_loan) == D("4000.00")
    assert (
        Allocation.objects.filter(transaction__trans_id="QOWN000001", reversed_at__isnull=True).count() == 1
    )
    assert not Allocation.objects.filter(reversed_at__isnull=False).exists()


def test_assigning_to_an_unknown_loan_is_a_message(admin_client, payments):
    response = admin_client.post(
        action_url("assign", "QNONE00001"), {"assign-loan_number": "LOAN-999999", "assign-confirm": "on"}
    )

    assert page_messages(response) == ["no loan numbered LOAN-999999"]
    assert not Allocation.objects.filter(transaction__trans_id="QNONE00001").exists()


@pytest.mark.parametrize("typed", ["LOAN-000201", "loan-000201"])
def test_officer_cannot_assign_to_a_loan_outside_their_portfolio(officer_client, payments, other_loan, typed):
    response = officer_client.post(
        action_url("assign", "QOWN000001"), {"assign-loan_number": typed, "assign-confirm": "on"}
    )

    assert page_messages(response) == [f"no loan numbered {typed}"]
    assert outstanding(other_loan) == D("7000.00")  # only its own payment QOTH000001
    assert MpesaTransaction.objects.get(trans_id="QOWN000001").match_strategy == "bill_reference"


def test_officer_marks_a_payment_reviewed_once(officer_client, officer, payments):
    response = officer_client.post(action_url("review", "QOWN000001"), {"review-note": "checked SMS"})

    assert page_messages(response) == ["QOWN000001 marked as reviewed."]
    tx = MpesaTransaction.objects.get(trans_id="QOWN000001")
    assert tx.reviewed_by == officer and tx.notes[-1] == f"reviewed by {officer.username}: checked SMS"

    again = officer_client.post(action_url("review", "QOWN000001"), {"review-note": ""})

    assert page_messages(again)[-1] == "QOWN000001 was already reviewed"


def test_admin_reverses_a_payment_after_confirming(admin_client, payments, own_loan):
    response = admin_client.post(
        action_url("reverse", "QOWN000001"), {"reverse-reason": "refunded", "reverse-confirm": "on"}
    )

    assert page_messages(response) == ["QOWN000001 reversed: its postings and credit were undone."]
    assert MpesaTransaction.objects.get(trans_id="QOWN000001").status == Status.REVERSED
    assert outstanding(own_loan) == D("5000.00")
    assert AuditEvent.objects.filter(action="repayment.reversed", data__reference="QOWN000001").count() == 1


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"reverse-reason": "refunded"}, ["Tick “I confirm” to reverse the payment."]),
        ({"reverse-confirm": "on"}, ["Reason: This field is required."]),
    ],
    ids=["no-confirmation", "no-reason"],
)
def test_reversing_needs_a_reason_and_a_confirmation(admin_client, payments, own_loan, data, expected):
    response = admin_client.post(action_url("reverse", "QOWN000001"), data)

    assert page_messages(response) == expected
    assert MpesaTransaction.objects.get(trans_id="QOWN000001").status == Status.PROCESSED
    assert outstanding(own_loan) == D("4000.00")


def test_only_admins_may_reverse(officer_client, admin_client, payments, own_loan):
    assert 'id="reverse-form"' not in officer_client.get(detail_url("QOWN000001")).content.decode()
    assert 'id="reverse-form"' in admin_client.get(detail_url("QOWN000001")).content.decode()

    response = officer_client.post(
        action_url("reverse", "QOWN000001"), {"reverse-reason": "refunded", "reverse-confirm": "on"}
    )

    assert page_messages(response) == ["only an admin may reverse a payment"]
    assert MpesaTransaction.objects.get(trans_id="QOWN000001").status == Status.PROCESSED
    assert outstanding(own_loan) == D("4000.00")


def test_actions_need_the_csrf_token(admin_user, payments):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)

    refused = browser.post(action_url("review", "QNONE00001"), {"review-note": "forged"})

    assert refused.status_code == 403
    assert MpesaTransaction.objects.get(trans_id="QNONE00001").reviewed_at is None

    browser.get(detail_url("QNONE00001"))  # sets the CSRF cookie, as a browser would get it
    token = browser.cookies["csrftoken"].value
    accepted = browser.post(
        action_url("review", "QNONE00001"), {"review-note": "real", "csrfmiddlewaretoken": token}
    )

    assert accepted.status_code == 302
    assert MpesaTransaction.objects.get(trans_id="QNONE00001").reviewed_at is not None


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_are_post_only(admin_client, payments, own_loan, action):
    response = admin_client.get(action_url(action, "QNONE00001"), ACTIONS[action])

    assert response.status_code == 405
    tx = MpesaTransaction.objects.get(trans_id="QNONE00001")
    assert (tx.status, tx.reviewed_at, tx.allocations.count()) == (Status.UNMATCHED, None, 0)
    assert outstanding(own_loan) == D("4000.00")
    assert not AuditEvent.objects.filter(actor_type="staff").exists()


def test_registering_is_post_only(admin_client, mpesa_config, fake_daraja):
    response = admin_client.get(reverse("admin_ui:configuration-register"))

    assert response.status_code == 405
    assert fake_daraja.calls == []
    mpesa_config.refresh_from_db()
    assert mpesa_config.last_registration_at is None


# --- The payment page -----------------------------------------------------------------------------


def test_payment_page_shows_payload_notes_allocations_and_audit(
    admin_client, admin_user, mpesa_config, make_payment, own_loan
):
    body = {
        "TransID": "QPAGE00001",
        "TransAmount": "1000.00",
        "BillRefNumber": "LOAN-000101",
        "MSISDN": "254722000000",
        "FirstName": "<script>alert(1)</script>",
    }
    make_payment(
        "QPAGE00001",
        bill_reference="LOAN-000101",
        msisdn="254722000000",
        msisdn_kind="plain",
        raw_body=json.dumps(body),
        process=True,
    )
    admin_client.post(action_url("review", "QPAGE00001"), {"review-note": "looked"})

    html = admin_client.get(detail_url("QPAGE00001")).content.decode()

    assert "&quot;TransID&quot;: &quot;QPAGE00001&quot;" in html  # pretty-printed, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "254722000000" not in html and "2547*****000" in html
    assert "matched LOAN-000101" in html  # the matcher's note
    assert f'href="/admin/core/loan/{own_loan.pk}/change/"' in html
    audit = html.split('id="audit"')[1]
    assert audit.index("repayment.posted") < audit.index("mpesa.reviewed")
    assert f"staff {admin_user.username}" in audit and "looked" in audit
    assert 'id="reprocess-form"' not in html  # processed: nothing to reprocess
    assert 'id="review-form"' not in html  # already reviewed

    # A borrower asks for a review after that: it may be marked reviewed again.
    ReviewRequest.objects.create(
        transaction=MpesaTransaction.objects.get(trans_id="QPAGE00001"),
        borrower=own_loan.borrower,
        phone="+254722000000",
        requested_loan=own_loan,
        reason="it was already moved or reviewed",
    )
    assert 'id="review-form"' in admin_client.get(detail_url("QPAGE00001")).content.decode()


def audit_rows(html: str) -> list[list[str]]:
    """The payment page's audit trail: the text of each row's cells."""
    body = html.split('id="audit"')[1].split("</tbody>")[0]
    return [
        [re.sub(r"\s+", " ", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>")[1], re.S)
    ]


def test_audit_trail_includes_the_credit_an_overpayment_left(admin_client, make_payment, own_loan):
    # 6,000 on a loan owing 5,000: the loan is paid off and 1,000 is held as the borrower's credit.
    make_payment("QOVER00001", amount="6000.00", bill_reference="LOAN-000101", process=True)

    html = admin_client.get(detail_url("QOVER00001")).content.decode()

    rows = audit_rows(html)
    assert [(row[1], row[3], row[4]) for row in rows] == [
        ("repayment.posted", "5,000.00", "LOAN-000101"),
        ("credit.added", "1,000.00", "—"),
    ]


def test_audit_trail_times_are_nairobi_time(admin_client, make_payment, own_loan):
    make_payment("QTIME00001", bill_reference="LOAN-000101", process=True)
    AuditEvent.objects.filter(data__reference="QTIME00001").update(
        created_at=datetime.datetime(2026, 3, 10, 21, 30, 5, tzinfo=datetime.UTC)
    )

    rows = audit_rows(admin_client.get(detail_url("QTIME00001")).content.decode())

    assert [row[0] for row in rows] == ["2026-03-11 00:30:05"]


def test_a_waiting_payment_shows_its_next_attempt_and_its_request(admin_client, mpesa_config, make_payment):
    tx = make_payment(
        "QWAIT00001",
        source_ip="196.201.214.200",
        raw_body='{"TransID": "QWAIT00001"}',
        attempts=2,
        next_attempt_at=datetime.datetime(2026, 3, 10, 9, 15, tzinfo=datetime.UTC),
        last_error="OperationalError: database is locked",
        notes=["attempt 1 failed: OperationalError: deadlock detected"],
    )

    html = admin_client.get(detail_url("QWAIT00001")).content.decode()

    attempts = html.split('id="attempts"')[1].split("</dl>")[0]
    assert figure(attempts, "attempt-count") == "2"
    assert figure(attempts, "next-attempt") == "2026-03-10 12:15:00"  # Nairobi time
    assert '<code class="error-text">OperationalError: database is locked</code>' in attempts
    received = timezone.localtime(tx.received_at).strftime("%Y-%m-%d %H:%M:%S")
    assert f"received {received} from 196.201.214.200: <strong>accepted</strong>" in attempts
    notes = html.split('class="notes"')[1].split("</ol>")[0]
    assert "attempt 1 failed: OperationalError: deadlock detected" in notes


def test_a_settled_payment_has_no_next_attempt(admin_client, payments):
    html = admin_client.get(detail_url("QOWN000001")).content.decode()

    attempts = html.split('id="attempts"')[1].split("</dl>")[0]
    assert 'id="next-attempt"' not in attempts
    assert "none stored (entered another way)" in attempts


# --- The list: filters and pages ------------------------------------------------------------------


@pytest.fixture
def payers(make_payment, own_borrower, other_borrower):
    make_payment("QPLAIN0001", msisdn="254722000000", msisdn_kind="plain", amount="100.00")
    make_payment("QHASH00001", msisdn=msisdn_hash(OWN_PHONE), msisdn_kind="hashed", amount="200.00")
    make_payment("QOTHER0001", msisdn=OTHER_PHONE.removeprefix("+"), msisdn_kind="plain", amount="300.00")
    make_payment("QFAILD0001", status=Status.FAILED, amount="400.00")


@pytest.mark.parametrize("phone", ["0722000000", "+254 722 000 000", "254722000000", "722000000"])
def test_phone_filter_matches_plain_and_hashed_numbers_in_any_form(admin_client, payers, phone):
    response = admin_client.get(reverse("admin_ui:transaction-list"), {"phone": phone})

    assert set(listed(response)) == {"QPLAIN0001", "QHASH00001"}


def test_status_filter(admin_client, payers):
    response = admin_client.get(reverse("admin_ui:transaction-list"), {"status": "failed"})

    assert listed(response) == ["QFAILD0001"]


def test_source_filter_and_the_payment_page_say_how_it_came(admin_client, make_payment):
    for trans_id, source in [("QCALL00001", "callback"), ("QPULL00001", "pull"), ("QSTAT00001", "statement")]:
        make_payment(trans_id, source=source)

    page = admin_client.get(reverse("admin_ui:transaction-list"), {"source": "pull"})

    assert listed(page) == ["QPULL00001"]
    html = page.content.decode()
    assert "Came by" in html and '<option value="pull" selected>Pull Transactions</option>' in html
    assert set(listed(admin_client.get(reverse("admin_ui:transaction-list")))) == {
        "QCALL00001",
        "QPULL00001",
        "QSTAT00001",
    }
    detail = admin_client.get(detail_url("QSTAT00001")).content.decode()
    assert '<dd id="tx-source">Statement import</dd>' in detail
    assert "never received: the payment was recovered by Statement import" in detail
    assert '<dd id="tx-source">Callback</dd>' in admin_client.get(detail_url("QCALL00001")).content.decode()
    refused = admin_client.get(reverse("admin_ui:transaction-list"), {"source": "fax"})
    assert listed(refused) == [] and "fax is not one of the available choices" in refused.content.decode()


def test_amount_range_is_inclusive(admin_client, payers):
    response = admin_client.get(
        reverse("admin_ui:transaction-list"), {"min_amount": "200", "max_amount": "300.00"}
    )

    assert set(listed(response)) == {"QHASH00001", "QOTHER0001"}


def test_date_range_is_inclusive_nairobi_days(admin_client, make_payment):
    make_payment("QDAY000001", trans_time=nairobi(datetime.date(2026, 3, 9), 23, 59))
    make_payment("QDAY000002", trans_time=nairobi(datetime.date(2026, 3, 10), 0, 0))
    make_payment("QDAY000003", trans_time=nairobi(datetime.date(2026, 3, 11), 23, 59))
    make_payment("QDAY000004", trans_time=nairobi(datetime.date(2026, 3, 12), 0, 0))

    response = admin_client.get(
        reverse("admin_ui:transaction-list"), {"date_from": "2026-03-10", "date_to": "2026-03-11"}
    )

    assert listed(response) == ["QDAY000003", "QDAY000002"]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"phone": "12345"}, "is not a Kenyan mobile number"),
        ({"min_amount": "abc"}, "is not a number"),
        ({"min_amount": "500", "max_amount": "100"}, "min_amount 500.00 is more than max_amount 100.00"),
        ({"date_from": "2026-03-12", "date_to": "2026-03-10"}, "date_from 2026-03-12 is after date_to"),
        ({"date_from": "2026-13-01"}, "Enter a valid date."),
        ({"status": "stolen"}, "Select a valid choice."),
    ],
    ids=["phone", "amount", "amount-range", "date-range", "bad-date", "status"],
)
def test_invalid_filters_are_form_errors(admin_client, payers, query, error):
    response = admin_client.get(reverse("admin_ui:transaction-list"), query)

    assert response.status_code == 200
    html = response.content.decode()
    assert error in html.replace("&#x27;", "'")
    assert listed(response) == [] and 'id="export-csv"' not in html


def test_pages_of_fifty_keep_the_filters(admin_client, mpesa_config):
    first_day = datetime.datetime(2026, 1, 1, 8, 0, tzinfo=datetime.UTC)
    MpesaTransaction.objects.bulk_create(
        MpesaTransaction(
            trans_id=f"QPAGE{number:05d}",
            trans_time=first_day + datetime.timedelta(minutes=number),
            amount=D("10.00"),
            business_short_code="600984",
            msisdn_kind="missing",
            config=mpesa_config,
            status=Status.FAILED if number % 2 else Status.RECEIVED,
        )
        for number in range(240)
    )
    url = reverse("admin_ui:transaction-list")

    first = admin_client.get(url, {"status": "received"})
    last = admin_client.get(url, {"status": "received", "page": "3"})

    assert listed(first) == [f"QPAGE{n:05d}" for n in range(238, 138, -2)]  # newest first, 50
    assert listed(last) == [f"QPAGE{n:05d}" for n in range(38, -1, -2)]  # the last 20
    assert 'href="?status=received&amp;page=2"' in first.content.decode()
    assert 'href="?status=received&amp;page=2"' in last.content.decode()
    assert "120 payments, page 1 of 3" in first.content.decode()
    assert 'href="/payments/transactions/export/?status=received"' in last.content.decode()


def test_list_queries_do_not_grow_with_rows(
    admin_client, make_payment, own_borrower, django_assert_max_num_queries
):
    for number in range(30):
        make_payment(f"QLOAD{number:05d}", borrower=own_borrower, msisdn="254722000000", msisdn_kind="plain")

    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("admin_ui:transaction-list"))

    assert len(listed(response)) == 30


# --- CSV ------------------------------------------------------------------------------------------


def export(client, **query) -> tuple[object, list[list[str]]]:
    response = client.get(reverse("admin_ui:transaction-export"), query)
    return response, list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_exports_every_filtered_payment_not_just_one_page(admin_client, mpesa_config, payments):
    MpesaTransaction.objects.bulk_create(
        MpesaTransaction(
            trans_id=f"QCSVX{number:05d}",
            trans_time=datetime.datetime(2026, 2, 1, 8, number, tzinfo=datetime.UTC),
            amount=D("10.00"),
            business_short_code="600984",
            msisdn_kind="missing",
            config=mpesa_config,
        )
        for number in range(60)
    )

    response, rows = export(admin_client, status="received")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="mpesa-payments-\d{8}-\d{4}\.csv"', response["Content-Disposition"]
    )
    assert rows[0] == [
        "trans_id",
        "trans_time",
        "amount",
        "status",
        "identified_by",
        "match_strategy",
        "bill_reference",
        "borrower",
        "msisdn",
        "loan_numbers",
        "source",
    ]
    assert sorted(row[0] for row in rows[1:]) == [f"QCSVX{n:05d}" for n in range(60)]


def test_csv_rows_mask_phones_and_defuse_formulas(admin_client, make_payment, own_loan):
    make_payment(
        "QCSV000001",
        bill_reference="=HYPERLINK(1)",
        msisdn="254722000000",
        msisdn_kind="plain",
        process=True,
    )
    make_payment(
        "QCSV000002", bill_reference="0722000000", msisdn=msisdn_hash(OWN_PHONE), msisdn_kind="hashed"
    )
    make_payment("QCSV000003", bill_reference="-2+3", trans_time=nairobi(datetime.date(2026, 3, 9), 23, 30))

    _, rows = export(admin_client)

    assert rows[1:] == [
        [
            "QCSV000002",
            "2026-03-10T12:00:00+03:00",
            "1000.00",
            "received",
            "",
            "",
            "2547*****000",
            "",
            # The column shows the number as every staff page does (how is the model's business).
            MpesaTransaction.objects.get(trans_id="QCSV000002").msisdn_display,
            "",
            "callback",
        ],
        [
            "QCSV000001",
            "2026-03-10T12:00:00+03:00",
            "1000.00",
            "processed",
            "msisdn",
            "single_loan",
            "'=HYPERLINK(1)",
            "Nicholas Kiprono",
            "2547*****000",
            "LOAN-000101",
            "callback",
        ],
        [
            "QCSV000003",
            "2026-03-09T23:30:00+03:00",
            "1000.00",
            "received",
            "",
            "",
            "'-2+3",
            "",
            "",
            "",
            "callback",
        ],
    ]
    assert "254722000000" not in json.dumps(rows) and msisdn_hash(OWN_PHONE) not in json.dumps(rows)


def test_csv_with_invalid_filters_goes_back_to_the_list(admin_client):
    response = admin_client.get(reverse("admin_ui:transaction-export"), {"phone": "12345"})

    assert response.status_code == 302
    assert response["Location"] == "/payments/transactions/?phone=12345"


# --- Dashboard ------------------------------------------------------------------------------------


@pytest.fixture
def known_days(make_payment, own_borrower, own_loan, other_loan):
    today = timezone.localdate()

    def ago(days: int) -> datetime.datetime:
        # Noon: inside the same Nairobi day whenever the test runs (stats count up to the end of today).
        return nairobi(today - datetime.timedelta(days=days))

    processed = [
        ("QDASH00001", 0, "1000.00", 100),  # today
        ("QDASH00003", 3, "2000.00", 300),  # this week
        ("QDASH00005", 40, "700.00", 900),  # before the 30 days
    ]
    for trans_id, days, amount, ms in processed:
        make_payment(
            trans_id, trans_time=ago(days), amount=amount, bill_reference="LOAN-000101", process=True
        )
        MpesaTransaction.objects.filter(trans_id=trans_id).update(processing_ms=ms)
    # States the engine reaches by other paths, set directly (with the borrower, so officers see them).
    mine = {"borrower": own_borrower}
    make_payment(
        "QDASH00002", trans_time=ago(0), amount="500.00", status=Status.UNMATCHED, processing_ms=200, **mine
    )
    make_payment("QDASH00004", trans_time=ago(20), amount="300.00", status=Status.FAILED, **mine)
    make_payment("QDASH00006", trans_time=ago(0), amount="400.00", **mine)  # pending
    # Another officer's payment: counted for admins only.
    make_payment(
        "QDASH00007", trans_time=ago(0), amount="9000.00", bill_reference="LOAN-000201", process=True
    )
    return today


def figure(html: str, cell: str) -> str:
    match = re.search(rf'id="{cell}">([^<]*)<', html)
    assert match, cell
    return match.group(1)


def test_dashboard_figures_for_an_officer(officer_client, known_days):
    html = officer_client.get(reverse("admin_ui:dashboard")).content.decode()

    assert [figure(html, f"{period}-count") for period in ("today", "last_7_days", "last_30_days")] == [
        "3",
        "4",
        "5",
    ]
    assert [figure(html, f"{period}-amount") for period in ("today", "last_7_days", "last_30_days")] == [
        "1,900.00",
        "3,900.00",
        "4,200.00",
    ]
    # processed / no longer waiting: today 1/2, 7 days 2/3, 30 days 2/4
    assert [figure(html, f"{period}-success") for period in ("today", "last_7_days", "last_30_days")] == [
        "50.0%",
        "66.7%",
        "50.0%",
    ]
    assert figure(html, "today-processing") == "150 ms"
    assert re.search(r'id="needing-attention">\s*<span class="big">2</span>', html)
    assert re.search(r'id="pending">\s*<span class="big">1</span>', html)
    assert (figure(html, "unmatched-count"), figure(html, "failed-count")) == ("1", "1")
    assert 'href="/payments/transactions/?status=failed"' in html
    assert 'href="/payments/transactions/?status=unmatched"' in html
    assert "QDASH00007" not in html


def test_dashboard_cards_count_only_what_needs_people(admin_client, known_days, make_payment, own_borrower):
    mine = {"borrower": own_borrower}
    make_payment("QDASH00008", status=Status.UNMATCHED, **mine)
    make_payment("QDASH00009", status=Status.UNMATCHED, reviewed_at=timezone.now(), **mine)  # seen to
    make_payment("QDASH00010", status=Status.FAILED, **mine)
    make_payment("QDASH00011", status=Status.FAILED, **mine)

    html = admin_client.get(reverse("admin_ui:dashboard")).content.decode()

    assert (figure(html, "unmatched-count"), figure(html, "failed-count")) == ("2", "3")
    assert re.search(r'id="needing-attention">\s*<span class="big">5</span>', html)


def test_dashboard_without_payments_counts_zero(admin_client):
    html = admin_client.get(reverse("admin_ui:dashboard")).content.decode()

    assert (figure(html, "unmatched-count"), figure(html, "failed-count")) == ("0", "0")


def test_payment_tables_show_amount_and_status_right_after_the_receipt(admin_client, payments):
    for url in (reverse("admin_ui:dashboard"), reverse("admin_ui:transaction-list")):
        html = admin_client.get(url).content.decode()
        table = html.split('<table class="payments">')[1]
        headers = re.findall(r"<th[^>]*>([^<]*)</th>", table.split("</thead>")[0])
        assert headers[:3] == ["Receipt", "Amount (KES)", "Status"], url
        first_row = re.findall(r"<td[^>]*>(.*?)</td>", table.split("<tbody>")[1].split("</tr>")[0], re.S)
        assert first_row[0].endswith(">QNONE00001</a>"), url  # the newest
        assert first_row[1] == "1,000.00", url
        assert first_row[2] == '<span class="status status-unmatched">Unmatched</span>', url


def test_dashboard_chart_and_recent_payments_for_an_admin(admin_client, known_days, make_payment):
    for number in range(8):
        make_payment(f"QRECENT{number:03d}", trans_time=nairobi(known_days - datetime.timedelta(days=50)))

    html = admin_client.get(reverse("admin_ui:dashboard")).content.decode()

    assert figure(html, "today-count") == "4" and figure(html, "today-amount") == "10,900.00"
    start = html.index('<svg class="chart"')
    chart = html[start : html.index("</svg>", start)]
    assert chart.count('<rect class="chart-bar"') == 30 and chart.count('<circle class="chart-dot"') == 30
    assert f"<title>{known_days:%a %d %b %Y}: 4 payments, KES 10,900.00</title>" in chart
    assert re.findall(r'href="/payments/transactions/([A-Z0-9]+)/"', html) == [
        "QDASH00007",  # today's, newest stored first
        "QDASH00006",
        "QDASH00002",
        "QDASH00001",
        "QDASH00003",
        "QDASH00004",
        "QDASH00005",
        "QRECENT007",
        "QRECENT006",
        "QRECENT005",
    ]


def test_chart_scales_and_escapes():
    day = datetime.date(2026, 3, 15)
    svg = daily_volume_svg([{"date": day, "count": 3, "amount": D("1234.50")}])

    assert nice_ceiling(D("1234.50")) == D("2000") and nice_ceiling(0) == D("1")
    assert "<title>Sun 15 Mar 2026: 3 payments, KES 1,234.50</title>" in svg
    assert 'height="0.0"' not in svg  # a day with payments has a visible bar


class MarkupDay(datetime.date):
    """A day that writes itself as markup, however it is formatted: it stands for any text the
    chart puts in a label or a title."""

    def __format__(self, spec: str) -> str:
        return "<script>alert(1)</script>&amp;"


def test_chart_escapes_its_labels_and_titles():
    days = [MarkupDay(2026, 3, 15), MarkupDay(2026, 3, 16)]

    svg = str(daily_volume_svg([{"date": day, "count": 1, "amount": D("10.00")} for day in days]))

    assert "<script" not in svg
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;"
    # The chart's title ("<first> to <last>"), each bar's and each dot's title, and the last day's label.
    assert svg.count(escaped) == 2 + 2 + 2 + 1
    assert f'<title id="daily-chart-title">Payments per day, {escaped} to {escaped}</title>' in svg
    assert f'class="chart-axis">16 {escaped}</text>' in svg  # "16 Mar" with markup for the month


# --- Configuration and test payment ---------------------------------------------------------------


@pytest.fixture
def fake_daraja(monkeypatch):
    """Daraja at the network boundary: every request is recorded and answered from ``answers``."""
    calls: list[tuple[str, object]] = []
    answers = {
        "registerurl": (
            200,
            {"OriginatorCoversationID": "1", "ResponseCode": "0", "ResponseDescription": "OK"},
        ),
        "simulate": (200, {"ResponseCode": "0", "ResponseDescription": "Accepted", "TransID": "SKTEST0001"}),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append((request.url.path, json.loads(request.content or b"null")))
        if request.url.path.endswith("/oauth/v1/generate"):
            return httpx.Response(200, json={"access_token": "fake-token", "expires_in": "3599"})
        status, body = next(reply for name, reply in answers.items() if name in request.url.path)
        return httpx.Response(status, json=body)

    for_config = DarajaClient.for_config.__func__
    monkeypatch.setattr(
        DarajaClient,
        "for_config",
        classmethod(
            lambda cls, config, transport=None: for_config(cls, config, transport=httpx.MockTransport(answer))
        ),
    )
    return SimpleNamespace(calls=calls, answers=answers)


def test_configuration_page_masks_the_credentials(admin_client, mpesa_config):
    html = admin_client.get(reverse("admin_ui:configuration")).content.decode()

    assert mpesa_config.consumer_key not in html and mpesa_config.consumer_secret not in html
    assert figure(html, "consumer-key") == "••••••••6789 (32 characters)"
    # Nothing of the secret: not its end, not its length.
    assert figure(html, "consumer-secret") == "set"
    assert "3210" not in html and "35 characters" not in html
    assert mpesa_config.validation_url in html and mpesa_config.confirmation_url in html
    assert 'id="register-form"' in html


def test_officers_see_neither_the_callback_token_nor_the_register_button(officer_client, mpesa_config):
    html = officer_client.get(reverse("admin_ui:configuration")).content.decode()

    assert mpesa_config.callback_token not in html and mpesa_config.consumer_key not in html
    assert (figure(html, "consumer-key"), figure(html, "consumer-secret")) == ("set", "set")
    assert "6789" not in html and "3210" not in html and "characters)" not in html
    assert "https://pay.haven.example/payments/c2b/••••••••/validation/" in html
    assert 'id="register-form"' not in html


def test_credentials_that_are_missing_say_so(admin_client, mpesa_config):
    MpesaConfiguration.objects.filter(pk=mpesa_config.pk).update(consumer_key="", consumer_secret="")

    html = admin_client.get(reverse("admin_ui:configuration")).content.decode()

    assert (figure(html, "consumer-key"), figure(html, "consumer-secret")) == ("not set", "not set")


def test_configuration_page_without_a_configuration(admin_client):
    response = admin_client.get(reverse("admin_ui:configuration"))

    assert response.status_code == 200
    assert "There is no active M-Pesa configuration yet" in response.content.decode()


def test_admin_registers_the_callback_urls(admin_client, mpesa_config, fake_daraja):
    response = admin_client.post(reverse("admin_ui:configuration-register"))

    assert response.status_code == 302 and response["Location"] == reverse("admin_ui:configuration")
    assert page_messages(response) == ["Callback URLs registered with Daraja (API v2)."]
    registered = [body for path, body in fake_daraja.calls if path.endswith("/registerurl")]
    assert registered == [
        {
            "ShortCode": "600984",
            "ResponseType": "Completed",
            "ConfirmationURL": mpesa_config.confirmation_url,
            "ValidationURL": mpesa_config.validation_url,
        }
    ]
    mpesa_config.refresh_from_db()
    assert mpesa_config.last_registration_result["ok"] is True


def test_a_refused_registration_is_a_message(admin_client, mpesa_config, fake_daraja):
    fake_daraja.answers["registerurl"] = (
        400,
        {"requestId": "1", "errorCode": "400.003.02", "errorMessage": "Bad Request - Invalid ValidationURL"},
    )

    response = admin_client.post(reverse("admin_ui:configuration-register"))

    assert response.status_code == 302
    [message] = page_messages(response)
    assert message.startswith("Daraja refused the registration:") and "Invalid ValidationURL" in message
    mpesa_config.refresh_from_db()
    assert mpesa_config.last_registration_result["ok"] is False


def test_officers_may_not_register(officer_client, mpesa_config, fake_daraja):
    response = officer_client.post(reverse("admin_ui:configuration-register"))

    assert page_messages(response) == ["Only an admin may register the callback URLs."]
    assert fake_daraja.calls == []


def test_test_payment_goes_through_the_configured_environment(admin_client, mpesa_config, fake_daraja):
    url = reverse("admin_ui:test-payment")

    response = admin_client.post(url, {"phone": "0722 000 000", "amount": "150", "account": "LOAN-000101"})

    assert response.status_code == 302 and response["Location"] == f"{url}?sent=SKTEST0001"
    assert page_messages(response) == ["M-Pesa accepted the test payment SKTEST0001."]
    [simulated] = [body for path, body in fake_daraja.calls if path.endswith("/simulate")]
    assert simulated == {
        "ShortCode": 600984,
        "CommandID": "CustomerPayBillOnline",
        "Amount": 150,
        "Msisdn": 254722000000,
        "BillRefNumber": "LOAN-000101",
        "MsisdnFormat": "hashed",
    }
    after = admin_client.get(response["Location"]).content.decode()
    assert f'href="{detail_url("SKTEST0001")}"' in after


def test_test_payment_with_a_bad_phone_is_a_form_error(admin_client, mpesa_config, fake_daraja):
    response = admin_client.post(reverse("admin_ui:test-payment"), {"phone": "12345", "amount": "150"})

    assert response.status_code == 200
    assert "is not a Kenyan mobile number" in response.content.decode()
    assert fake_daraja.calls == []


def test_test_payment_is_refused_in_production(admin_client, mpesa_config, fake_daraja):
    mpesa_config.environment = MpesaConfiguration.Environment.PRODUCTION
    mpesa_config.save()
    url = reverse("admin_ui:test-payment")

    page = admin_client.get(url).content.decode()
    response = admin_client.post(url, {"phone": OWN_PHONE, "amount": "150", "account": "LOAN-000101"})

    assert 'id="production"' in page and "disabled" in page
    assert response.status_code == 200
    assert page_messages(response) == [
        "Nothing was sent: M-Pesa has no simulation in production: pay from a real phone instead"
    ]
    assert fake_daraja.calls == [] and not MpesaTransaction.objects.exists()


def test_officers_may_not_make_test_payments(officer_client, mpesa_config, fake_daraja):
    url = reverse("admin_ui:test-payment")

    page = officer_client.get(url)
    response = officer_client.post(url, {"phone": OWN_PHONE, "amount": "150", "account": "LOAN-000201"})

    for answer in (page, response):
        assert answer.status_code == 403
        html = answer.content.decode()
        assert 'id="admins-only"' in html and "Only an admin may make test payments" in html
        assert 'id="test-payment-form"' not in html
    assert fake_daraja.calls == [] and not MpesaTransaction.objects.exists()


def test_the_test_payment_link_is_for_admins_only(officer_client, admin_client):
    link = f'href="{reverse("admin_ui:test-payment")}"'

    assert link not in officer_client.get(reverse("admin_ui:dashboard")).content.decode()
    assert link in admin_client.get(reverse("admin_ui:dashboard")).content.decode()


def test_a_held_payment_shows_why_on_its_page_and_the_dashboard(admin_client, make_payment, own_loan):
    make_payment("QHELD00001", amount="300000.00", bill_reference="LOAN-000101", process=True)

    page = admin_client.get(detail_url("QHELD00001")).content.decode()
    assert (
        "Held for staff, not posted:</strong> KES 300,000.00 is more than one M-Pesa payment can be" in page
    )
    assert 'id="reprocess-form"' not in page and 'id="assign-form"' in page
    dashboard = admin_client.get(reverse("admin_ui:dashboard")).content.decode()
    assert re.search(r'id="held-count">1<', dashboard)
    assert re.search(r'<span class="big">1</span> need attention', dashboard)
    assert outstanding(own_loan) == D("5000.00")


def test_an_officer_sees_only_the_status_queries_they_made(client, mpesa_config, officer, other_officer):
    from payments.models import StatusQuery
    from tests.factories import AdminFactory

    StatusQuery.objects.create(config=mpesa_config, trans_id="QMINE00001", requested_by=officer)
    StatusQuery.objects.create(config=mpesa_config, trans_id="QOTHER0001", requested_by=other_officer)
    client.force_login(officer)

    page = client.get(reverse("admin_ui:status-query")).content.decode()

    assert "QMINE00001" in page and "QOTHER0001" not in page
    client.force_login(AdminFactory())
    everything = client.get(reverse("admin_ui:status-query")).content.decode()
    assert "QMINE00001" in everything and "QOTHER0001" in everything
