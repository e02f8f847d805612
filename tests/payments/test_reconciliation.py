"""Balance gaps (found once, alerted once, not found where there are none, resolved when the money
is found), the reconciliation report API and its staff page."""

import datetime
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.urls import reverse

from core.dates import NAIROBI
from core.models import OutboxMessage
from payments.models import BalanceGap
from payments.selectors import reconciliation_report
from payments.services.daraja import mpesa_simulate
from payments.services.pull import mpesa_pull_transactions
from payments.services.reconciliation import balance_gaps_find
from tests.factories import AdminFactory
from tests.payments.conftest import status_result
from tests.payments.test_processing import stored_payment

DAY = datetime.date(2026, 11, 20)
PAYBILL_RESULT = "status_result_paybill_payment.json"


def at(hour: int, minute: int = 0, day: datetime.date = DAY) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=NAIROBI)


def paid(config, trans_id: str, amount: str, balance: str | None, when: datetime.datetime, **fields):
    return stored_payment(
        config,
        trans_id=trans_id,
        amount=D(amount),
        org_account_balance=None if balance is None else D(balance),
        trans_time=when,
        **fields,
    )


SINCE = at(0) - datetime.timedelta(days=1)


def test_a_balance_gap_reads_as_an_amount_in_kes():
    gap = BalanceGap(gap=D("12500.5"), from_transaction_id=7, to_transaction_id=9)
    assert str(gap) == "KES 12,500.50 unseen between 7 and 9"


@pytest.mark.django_db
def test_a_balance_gap_is_recorded_and_alerted_once(mpesa_config):
    admin = AdminFactory(phone="+254700999888")
    paid(mpesa_config, "QGAP000001", "500.00", "10500.00", at(9))
    paid(mpesa_config, "QGAP000002", "200.00", "11000.00", at(10))  # 300 came in unseen

    found = balance_gaps_find(config=mpesa_config, since=SINCE)
    again = balance_gaps_find(config=mpesa_config, since=SINCE)

    assert [(g.from_transaction.trans_id, g.to_transaction.trans_id, g.gap) for g in found] == [
        ("QGAP000001", "QGAP000002", D("300.00"))
    ]
    assert again == [] and BalanceGap.objects.count() == 1
    alert = OutboxMessage.objects.get(user=admin, context__alert="balance_gap")
    assert alert.context == {"kind": "ops", "alert": "balance_gap"}
    assert "KES 300.00" in alert.body and "QGAP000001" in alert.body


@pytest.mark.django_db
def test_no_gap_where_the_balances_add_up_or_fall(mpesa_config):
    paid(mpesa_config, "QNOGAP0001", "500.00", "10500.00", at(9))
    paid(mpesa_config, "QNOGAP0002", "200.00", "10700.00", at(10))  # exactly the payment
    paid(mpesa_config, "QNOGAP0003", "100.00", "10750.00", at(11))  # a charge of 50 went out
    paid(mpesa_config, "QNOGAP0004", "100.00", None, at(12))  # no balance sent: skipped over

    assert balance_gaps_find(config=mpesa_config, since=SINCE) == []
    assert not BalanceGap.objects.exists()
    assert not OutboxMessage.objects.filter(context__alert="balance_gap").exists()


@pytest.mark.django_db
def test_a_gap_is_resolved_when_its_money_is_recovered(mpesa_config):
    paid(mpesa_config, "QRES000001", "500.00", "10500.00", at(9))
    paid(mpesa_config, "QRES000002", "200.00", "11000.00", at(10))
    balance_gaps_find(config=mpesa_config, since=SINCE)

    paid(mpesa_config, "QRES000003", "300.00", None, at(9, 30), source="pull")
    balance_gaps_find(config=mpesa_config, since=SINCE)

    assert BalanceGap.objects.get().resolved_at is not None
    assert reconciliation_report(day=DAY)["drift"] == []


@pytest.mark.urls("tests.payments.emulator_urls")
def test_a_lost_callback_shows_as_a_gap_until_a_pull_finds_it(emulated_paybill):
    def pay(amount: int, lost: bool = False) -> None:
        time.sleep(1.05)  # M-Pesa times are to the second: keep the three in order
        mpesa_simulate(
            config=emulated_paybill,
            phone="0722000000",
            amount=amount,
            bill_reference="",
            deliver_callbacks=not lost,
        )

    pay(500)
    pay(300, lost=True)
    pay(200)

    gap = balance_gaps_find(config=emulated_paybill)[0]
    assert gap.gap == D("300.00")

    mpesa_pull_transactions(config=emulated_paybill)
    balance_gaps_find(config=emulated_paybill)

    gap.refresh_from_db()
    assert gap.resolved_at is not None


# --- GET /api/v1/reconciliation ----------------------------------------------------------------------


@pytest.fixture
def a_day(mpesa_config):
    from payments.services import transaction_process

    paid(mpesa_config, "QREC000001", "500.00", "10500.00", at(9))
    paid(mpesa_config, "QREC000002", "200.00", "11000.00", at(10))
    paid(mpesa_config, "QREC000003", "150.50", None, at(11), source="pull")
    paid(mpesa_config, "QREC000004", "99.00", None, at(12), source="statement")
    paid(mpesa_config, "QRECNEXT01", "1.00", None, at(0, 0, DAY + datetime.timedelta(days=1)))
    paid(mpesa_config, "QRECPREV01", "2.00", None, at(23, 59, DAY - datetime.timedelta(days=1)))
    transaction_process(trans_id="QREC000001")  # unmatched: no borrower
    balance_gaps_find(config=mpesa_config, since=SINCE)
    mpesa_config.last_pull_code = "1000"
    mpesa_config.last_pull_message = "Success"
    mpesa_config.last_pull_at = at(11, 45)
    mpesa_config.save()


@pytest.fixture
def api(admin_user):
    from tests.core.test_api_tokens import client_for

    return client_for(admin_user)


@pytest.mark.django_db
def test_reconciliation_report_body(api, a_day):
    response = api.get("/api/v1/reconciliation", {"date": "2026-11-20"})

    assert response.status_code == 200
    assert response.json() == {
        "date": "2026-11-20",
        "by_source": {
            "callback": {"count": 2, "amount": "700.00"},
            "pull": {"count": 1, "amount": "150.50"},
            "statement": {"count": 1, "amount": "99.00"},
            "status_query": {"count": 0, "amount": "0.00"},
        },
        "by_status": {
            "received": {"count": 3, "amount": "449.50"},
            "processed": {"count": 0, "amount": "0.00"},
            "unmatched": {"count": 1, "amount": "500.00"},
            "failed": {"count": 0, "amount": "0.00"},
            "held": {"count": 0, "amount": "0.00"},
            "reversed": {"count": 0, "amount": "0.00"},
        },
        "drift": [{"from_trans_id": "QREC000001", "to_trans_id": "QREC000002", "gap": "300.00"}],
        "last_pull": {
            "short_code": "600984",
            "at": "2026-11-20T08:45:00Z",
            "code": "1000",
            "message": "Success",
        },
    }


@pytest.mark.django_db
def test_reconciliation_of_an_empty_day(api, a_day):
    body = api.get("/api/v1/reconciliation", {"date": "2026-11-18"}).json()

    assert body["by_source"]["callback"] == {"count": 0, "amount": "0.00"}
    assert body["drift"] == []


@pytest.mark.django_db
def test_reconciliation_needs_a_token_and_a_real_date(api, a_day):
    from django.test import Client

    assert Client(HTTP_AUTHORIZATION="Bearer wrong").get("/api/v1/reconciliation").status_code == 401
    response = api.get("/api/v1/reconciliation", {"date": "2026-02-30"})
    assert response.status_code == 422


@pytest.mark.django_db
def test_officers_see_only_their_portfolio_in_the_totals(a_day, officer):
    from tests.core.test_api_tokens import client_for

    body = client_for(officer).get("/api/v1/reconciliation", {"date": "2026-11-20"}).json()

    assert body["by_source"]["callback"] == {"count": 0, "amount": "0.00"}


def test_the_report_schema_has_every_source_and_every_status():
    from payments.models import TransactionSource, TransactionStatus
    from payments.schemas import BySourceOut, ByStatusOut

    assert list(BySourceOut.model_fields) == TransactionSource.values
    assert list(ByStatusOut.model_fields) == TransactionStatus.values


@pytest.fixture
def every_status(mpesa_config):
    """One payment of DAY in each status a payment can have, by every road, with amounts that tell
    them apart (a sum that leaves one out cannot come to the total)."""
    from payments.models import TransactionSource, TransactionStatus

    sources = TransactionSource.values
    for position, status in enumerate(TransactionStatus.values):
        paid(
            mpesa_config,
            f"QSTATUS{position:03d}",
            f"{10**position}.00",
            None,
            at(9, position),
            status=status,
            source=sources[position % len(sources)],
        )
    return len(TransactionStatus.values), sum((D(10**p) for p in range(len(TransactionStatus.values))), D(0))


@pytest.mark.django_db
def test_the_sums_by_source_and_by_status_agree_on_a_day_with_every_status(api, every_status):
    count, amount = every_status

    body = api.get("/api/v1/reconciliation", {"date": "2026-11-20"}).json()

    def total(groups: dict) -> tuple[int, D]:
        return sum(g["count"] for g in groups.values()), sum((D(g["amount"]) for g in groups.values()), D(0))

    assert total(body["by_source"]) == total(body["by_status"]) == (count, amount)
    assert {status: group["count"] for status, group in body["by_status"].items()} == {
        "received": 1,
        "processed": 1,
        "unmatched": 1,
        "failed": 1,
        "held": 1,
        "reversed": 1,
    }
    assert body["by_status"]["held"] == {"count": 1, "amount": "10000.00"}


@pytest.mark.django_db
def test_the_staff_page_counts_every_status(admin_client, every_status):
    html = admin_client.get(reverse("admin_ui:reconciliation"), {"date": "2026-11-20"}).content.decode()

    by_status = html.split('id="by-status"')[1].split("</table>")[0]
    assert '<td>Held for staff</td><td class="num">1</td><td class="num">10,000.00</td>' in by_status
    assert by_status.count("<tr><td>") == every_status[0]


@pytest.fixture
def gap_in_a_portfolio(mpesa_config, officer):
    """A balance gap between two payments of ``officer``'s borrower, and one between two payments
    of another officer's borrower."""
    from tests.factories import BorrowerFactory

    own = BorrowerFactory(loan_officer=officer)
    other = BorrowerFactory()
    paid(mpesa_config, "QOWNGAP001", "500.00", "10500.00", at(9), borrower=own, status="processed")
    paid(mpesa_config, "QOWNGAP002", "200.00", "11000.00", at(10), borrower=own, status="processed")
    paid(mpesa_config, "QOTHGAP001", "100.00", "11400.00", at(11), borrower=other, status="processed")
    paid(mpesa_config, "QOTHGAP002", "100.00", "11900.00", at(12), borrower=other, status="processed")
    assert len(balance_gaps_find(config=mpesa_config, since=SINCE)) == 3


@pytest.mark.django_db
def test_officers_see_no_balance_gaps_in_the_api(api, officer, gap_in_a_portfolio):
    from tests.core.test_api_tokens import client_for

    mine = client_for(officer).get("/api/v1/reconciliation", {"date": "2026-11-20"}).json()
    everything = api.get("/api/v1/reconciliation", {"date": "2026-11-20"}).json()

    assert mine["drift"] == []
    assert mine["by_source"]["callback"] == {"count": 2, "amount": "700.00"}
    assert [(gap["from_trans_id"], gap["to_trans_id"], gap["gap"]) for gap in everything["drift"]] == [
        ("QOWNGAP001", "QOWNGAP002", "300.00"),
        ("QOWNGAP002", "QOTHGAP001", "300.00"),
        ("QOTHGAP001", "QOTHGAP002", "400.00"),
    ]


@pytest.mark.django_db
def test_officers_see_no_balance_gaps_on_the_staff_page(officer, admin_client, gap_in_a_portfolio):
    from django.test import Client

    client = Client()
    client.force_login(officer)

    html = client.get(reverse("admin_ui:reconciliation"), {"date": "2026-11-20"}).content.decode()

    assert "QOTHGAP" not in html and 'id="drift"' not in html
    assert 'id="drift-for-admins"' in html and 'id="no-drift"' not in html
    assert "QOWNGAP001" not in html  # their own payments, but not recovered: only in the drift table
    admin_html = admin_client.get(reverse("admin_ui:reconciliation"), {"date": "2026-11-20"}).content.decode()
    assert 'id="drift"' in admin_html and "QOTHGAP002" in admin_html


@pytest.mark.django_db
def test_staff_page_shows_the_day_with_links(admin_client, a_day):
    html = admin_client.get(reverse("admin_ui:reconciliation"), {"date": "2026-11-20"}).content.decode()

    assert reverse("admin_ui:transaction-detail", kwargs={"trans_id": "QREC000003"}) in html  # recovered
    assert reverse("admin_ui:transaction-detail", kwargs={"trans_id": "QREC000002"}) in html  # drift
    assert "300.00" in html and "Pull Transactions" in html
    assert "QRECNEXT01" not in html
    assert "1000 Success" in html


@pytest.mark.django_db
def test_reconciliation_asked_twice_answers_the_same(api, a_day):
    first = api.get("/api/v1/reconciliation", {"date": "2026-11-20"})
    second = api.get("/api/v1/reconciliation", {"date": "2026-11-20"})
    assert first.json() == second.json()
    assert BalanceGap.objects.count() == 1  # reading records nothing


@pytest.mark.django_db
def test_reconciliation_with_an_oversized_date_is_422(api, a_day):
    response = api.get("/api/v1/reconciliation", {"date": "2026-11-20" * 1000})
    assert response.status_code == 422


# --- Every recovery road ends with the gap scan --------------------------------------------------------


def recently(hours: float) -> datetime.datetime:
    from django.utils import timezone

    return timezone.now() - datetime.timedelta(hours=hours)


def callbacks_with_a_gap(config) -> None:
    """Two callback payments of five and four hours ago (out of a two-hour pull's reach) whose
    balances show 300.00 that reached the paybill between them and that no road will find."""
    paid(config, "QROAD00001", "500.00", "10500.00", recently(5))
    paid(config, "QROAD00002", "200.00", "11000.00", recently(4))


def found_once() -> None:
    gap = BalanceGap.objects.get()
    assert (gap.from_transaction.trans_id, gap.to_transaction.trans_id, gap.gap, gap.resolved_at) == (
        "QROAD00001",
        "QROAD00002",
        D("300.00"),
        None,
    )
    assert OutboxMessage.objects.filter(context__alert="balance_gap").count() == 1


@pytest.mark.urls("tests.payments.emulator_urls")
def test_the_pull_command_looks_for_gaps(emulated_paybill):
    from io import StringIO

    from django.core.management import call_command

    AdminFactory(phone="+254700999888")
    callbacks_with_a_gap(emulated_paybill)

    out = StringIO()
    call_command("pull_transactions", stdout=out)

    assert (
        out.getvalue() == "600984: fetched 0 known 0 created 0 balance gaps 1 (1001 No transactions found)\n"
    )
    found_once()

    call_command("pull_transactions", stdout=StringIO())
    found_once()


@pytest.mark.urls("tests.payments.emulator_urls")
def test_the_beat_pull_looks_for_gaps_even_when_daraja_refuses(emulated_paybill, settings):
    from payments.tasks import pull_transactions_task

    AdminFactory(phone="+254700999888")
    callbacks_with_a_gap(emulated_paybill)
    settings.MPESA_EMULATOR_ENABLED = False  # the emulator answers 404, as a wrong base URL would

    assert pull_transactions_task() == 0
    found_once()
    assert pull_transactions_task() == 0
    found_once()


STATEMENT = Path(__file__).resolve().parent.parent / "fixtures" / "statements" / "org_portal_utility.csv"


@pytest.mark.django_db
def test_a_statement_import_looks_for_gaps(mpesa_config):
    from io import StringIO

    from django.core.management import call_command

    AdminFactory(phone="+254700999888")
    callbacks_with_a_gap(mpesa_config)

    call_command("import_statement", str(STATEMENT), stdout=StringIO(), stderr=StringIO())
    found_once()
    call_command("import_statement", str(STATEMENT), stdout=StringIO(), stderr=StringIO())
    found_once()


@pytest.mark.django_db
def test_a_statement_uploaded_in_the_admin_looks_for_gaps(admin_client, mpesa_config):
    AdminFactory(phone="+254700999888")
    callbacks_with_a_gap(mpesa_config)
    url = reverse("admin:payments_mpesatransaction_import_statement")

    with STATEMENT.open("rb") as upload:
        first = admin_client.post(url, {"statement": upload, "short_code": "600984"}).content.decode()
    found_once()
    with STATEMENT.open("rb") as upload:
        again = admin_client.post(url, {"statement": upload, "short_code": "600984"}).content.decode()
    found_once()

    assert '<ul id="statement-gaps"><li>KES 300.00 between QROAD00001 and QROAD00002</li></ul>' in first
    assert 'id="statement-gaps"' not in again  # found by the first import, not again


@pytest.mark.django_db
def test_a_statement_reaching_further_back_than_three_days_is_scanned_from_its_start(mpesa_config, tmp_path):
    from payments.services.statements import statement_import

    long_ago = datetime.datetime(2024, 3, 5, 8, 0, tzinfo=NAIROBI)
    paid(mpesa_config, "QOLD000001", "500.00", "10500.00", long_ago)
    statement = tmp_path / "statement.csv"
    statement.write_text(
        "Receipt No.,Completion Time,Details,Transaction Status,Paid In,Withdrawn,Balance,Other Party Info,A/C No.\n"
        "SAB7LQ2X9K,2024-03-05 09:30:12,Pay Bill,Completed,200.00,,11000.00,254722000000 - A B,X\n"
    )

    result = statement_import(path=statement, config=mpesa_config)

    assert [(gap.from_transaction.trans_id, gap.to_transaction.trans_id, gap.gap) for gap in result.gaps] == [
        ("QOLD000001", "SAB7LQ2X9K", D("300.00"))
    ]


def test_a_status_query_answer_that_creates_a_payment_looks_for_gaps(client, transactional_db):
    from payments.models import MpesaTransaction, StatusQuery
    from tests.factories import MpesaConfigurationFactory

    config = MpesaConfigurationFactory()
    AdminFactory(phone="+254700999888")
    callbacks_with_a_gap(config)
    url = config.status_result_url.replace("https://pay.haven.example", "")
    an_hour_ago = int(recently(1).astimezone(NAIROBI).strftime("%Y%m%d%H%M%S"))
    assert not BalanceGap.objects.exists()

    for n, receipt in enumerate(["SG91EZ3N2F", "SG91EZ3N2G"]):
        query = StatusQuery.objects.create(config=config, trans_id=receipt, conversation_id=f"AG_{n}")
        answer = status_result(PAYBILL_RESULT, query, FinalisedTime=an_hour_ago, InitiatedTime=an_hour_ago)

        assert client.post(url, answer, content_type="application/json").status_code == 200

        query.refresh_from_db()
        assert query.outcome == "created"
        assert MpesaTransaction.objects.get(trans_id=receipt).source == "status_query"
        found_once()


def test_a_status_query_answer_that_creates_nothing_does_not_scan(client, transactional_db):
    from payments.models import StatusQuery
    from tests.factories import MpesaConfigurationFactory

    config = MpesaConfigurationFactory()
    callbacks_with_a_gap(config)
    query = StatusQuery.objects.create(config=config, trans_id="QROAD00002", conversation_id="AG_1")
    url = config.status_result_url.replace("https://pay.haven.example", "")

    client.post(url, status_result(PAYBILL_RESULT, query), content_type="application/json")

    query.refresh_from_db()
    assert query.outcome == "confirmed"
    assert not BalanceGap.objects.exists()
