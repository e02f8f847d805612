"""Payment statistics against a known set of payments: the three periods at Nairobi-midnight
boundaries, success rate, processing time, the backlog, every one of the 30 days, and its query count."""

import datetime
from decimal import Decimal as D

import pytest

from core.actors import Actor
from payments.models import MpesaTransaction
from payments.parsing import NAIROBI
from payments.services import transaction_mark_reviewed, transaction_process
from payments.stats import payment_stats
from tests.factories import BorrowerFactory, LoanFactory, OfficerFactory
from tests.payments.test_processing import stored_payment

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 3, 15, 10, 0, 0, tzinfo=NAIROBI)
TODAY = datetime.date(2026, 3, 15)


def at(month: int, day: int, *clock: int) -> datetime.datetime:
    return datetime.datetime(2026, month, day, *clock, tzinfo=NAIROBI)


def payment(config, trans_id, when, amount, *, matched=True, processing_ms=None):
    tx = stored_payment(
        config,
        trans_id=trans_id,
        trans_time=when,
        amount=D(amount),
        bill_reference="LOAN-000901" if matched else "rent",
    )
    tx = transaction_process(trans_id=tx.trans_id)
    if processing_ms is not None:
        # The engine measures real elapsed time; pin it so the average is known.
        MpesaTransaction.objects.filter(pk=tx.pk).update(processing_ms=processing_ms)
    return tx


@pytest.fixture
def officer():
    return OfficerFactory()


@pytest.fixture
def known_payments(mpesa_config, officer, monkeypatch):
    LoanFactory(
        borrower=BorrowerFactory(loan_officer=officer),
        loan_number="LOAN-000901",
        principal_disbursed=D("100000.00"),
    )
    processed = [
        ("QSTAT00001", at(3, 15, 0, 0, 0), "1000.00", 100),  # today's first second
        ("QSTAT00004", at(3, 14, 23, 59, 59), "500.00", 300),  # yesterday's last second
        ("QSTAT00006", at(3, 5, 12, 0, 0), "700.00", 150),  # in 30 days, not in 7
        ("QSTAT00007", at(2, 14, 0, 0, 0), "300.00", 200),  # the first of the 30 days
        ("QSTAT00008", at(2, 13, 23, 59, 59), "999.00", 999),  # the day before: in no period
    ]
    for trans_id, when, amount, ms in processed:
        assert payment(mpesa_config, trans_id, when, amount, processing_ms=ms).status == "processed"
    unmatched = payment(
        mpesa_config, "QSTAT00002", at(3, 15, 9, 0, 0), "200.00", matched=False, processing_ms=50
    )
    assert unmatched.status == "unmatched"
    reviewed = payment(
        mpesa_config, "QSTAT00009", at(3, 10, 8, 0, 0), "80.00", matched=False, processing_ms=70
    )
    transaction_mark_reviewed(trans_id=reviewed.trans_id, actor=Actor.system("tests"), note="refunded")
    old = payment(mpesa_config, "QSTAT00010", at(1, 2, 8, 0, 0), "60.00", matched=False)
    assert old.status == "unmatched"  # long ago but never reviewed: still needs attention
    pending = stored_payment(
        mpesa_config, trans_id="QSTAT00003", trans_time=at(3, 15, 9, 30, 0), amount=D("400.00")
    )
    assert pending.status == "received"

    def broken(**kwargs):
        raise RuntimeError("ledger exploded")

    monkeypatch.setattr("payments.services.processing.queue_payment_news", broken)
    failed = payment(mpesa_config, "QSTAT00005", at(3, 12, 12, 0, 0), "250.00")
    assert (failed.status, failed.processing_ms) == ("failed", None)
    monkeypatch.undo()


def test_periods_against_known_payments(known_payments):
    stats = payment_stats(queryset=MpesaTransaction.objects.all(), now=NOW)

    assert stats["generated_at"] == NOW
    assert stats["periods"] == {
        "today": {
            "start": TODAY,
            # 00:00:00 today counts; 23:59:59 yesterday does not. QSTAT00003 is still waiting.
            "received": {"count": 3, "amount": D("1600.00")},
            "processed": {"count": 1, "amount": D("1000.00")},
            "unmatched": {"count": 1, "amount": D("200.00")},
            "failed": {"count": 0, "amount": D("0.00")},
            "success_rate": 0.5,  # 1 processed of 2 no longer waiting
            "average_processing_ms": 75.0,
        },
        "last_7_days": {
            "start": datetime.date(2026, 3, 9),
            "received": {"count": 6, "amount": D("2430.00")},
            "processed": {"count": 2, "amount": D("1500.00")},
            "unmatched": {"count": 2, "amount": D("280.00")},
            "failed": {"count": 1, "amount": D("250.00")},
            "success_rate": 0.4,
            "average_processing_ms": 130.0,  # (100 + 50 + 300 + 70) / 4; the failed one has no time
        },
        "last_30_days": {
            "start": datetime.date(2026, 2, 14),
            "received": {"count": 8, "amount": D("3430.00")},
            "processed": {"count": 4, "amount": D("2500.00")},
            "unmatched": {"count": 2, "amount": D("280.00")},
            "failed": {"count": 1, "amount": D("250.00")},
            "success_rate": 0.5714,  # 4 / 7
            "average_processing_ms": 145.0,
        },
    }


def test_backlog_counts_cover_every_date(known_payments):
    stats = payment_stats(queryset=MpesaTransaction.objects.all(), now=NOW)

    # Pending: QSTAT00003. Needing attention: QSTAT00002, QSTAT00005 and the January QSTAT00010;
    # the reviewed QSTAT00009 does not count.
    assert (stats["pending"], stats["needing_attention"]) == (1, 3)
    assert stats["needing_attention"] == MpesaTransaction.objects.needing_attention().count()


def test_daily_has_every_one_of_the_30_days(known_payments):
    stats = payment_stats(queryset=MpesaTransaction.objects.all(), now=NOW)

    with_payments = {
        datetime.date(2026, 3, 15): (3, D("1600.00")),
        datetime.date(2026, 3, 14): (1, D("500.00")),
        datetime.date(2026, 3, 12): (1, D("250.00")),
        datetime.date(2026, 3, 10): (1, D("80.00")),
        datetime.date(2026, 3, 5): (1, D("700.00")),
        datetime.date(2026, 2, 14): (1, D("300.00")),
    }
    expected = []
    for back in range(29, -1, -1):
        day = TODAY - datetime.timedelta(days=back)
        count, amount = with_payments.get(day, (0, D("0.00")))
        expected.append({"date": day, "count": count, "amount": amount})
    assert stats["daily"] == expected
    assert stats["daily"][0]["date"] == datetime.date(2026, 2, 14)
    assert (
        sum(day["count"] for day in stats["daily"]) == stats["periods"]["last_30_days"]["received"]["count"]
    )


def test_nothing_to_count_gives_nulls_and_zero_days(known_payments):
    stranger = OfficerFactory()

    stats = payment_stats(queryset=MpesaTransaction.objects.visible_to(stranger), now=NOW)

    assert stats["periods"]["today"] == {
        "start": TODAY,
        "received": {"count": 0, "amount": D("0.00")},
        "processed": {"count": 0, "amount": D("0.00")},
        "unmatched": {"count": 0, "amount": D("0.00")},
        "failed": {"count": 0, "amount": D("0.00")},
        "success_rate": None,
        "average_processing_ms": None,
    }
    assert (stats["pending"], stats["needing_attention"]) == (0, 0)
    assert [day["count"] for day in stats["daily"]] == [0] * 30


def test_only_waiting_payments_give_no_success_rate(mpesa_config):
    stored_payment(mpesa_config, trans_id="QWAIT00001", trans_time=at(3, 15, 8, 0, 0))

    today = payment_stats(queryset=MpesaTransaction.objects.all(), now=NOW)["periods"]["today"]

    assert (today["received"]["count"], today["success_rate"]) == (1, None)


def test_officer_stats_cover_their_portfolio_only(known_payments, officer):
    stats = payment_stats(queryset=MpesaTransaction.objects.visible_to(officer), now=NOW)

    # Unmatched payments belong to nobody's portfolio. The one that failed after matching the
    # officer's borrower keeps that borrower (the officer is alerted and may act on it): it is theirs.
    week = stats["periods"]["last_7_days"]
    assert stats["periods"]["today"]["received"] == {"count": 1, "amount": D("1000.00")}
    assert (week["received"], week["processed"], week["failed"]["count"], week["success_rate"]) == (
        {"count": 3, "amount": D("1750.00")},
        {"count": 2, "amount": D("1500.00")},
        1,
        round(2 / 3, 4),
    )
    assert (stats["pending"], stats["needing_attention"]) == (0, 1)


def test_a_fixed_number_of_queries(known_payments, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        payment_stats(queryset=MpesaTransaction.objects.all(), now=NOW)


def test_officer_stats_count_each_payment_once_when_the_borrower_has_several_loans(mpesa_config):
    """A portfolio reached through loans must not repeat a payment once per loan in the sums."""
    officer = OfficerFactory()
    borrower = BorrowerFactory(loan_officer=officer)
    for number in ("LOAN-000801", "LOAN-000802", "LOAN-000803"):
        LoanFactory(loan_number=number, borrower=borrower, loan_officer=officer)
    tx = stored_payment(
        mpesa_config,
        bill_reference="LOAN-000801",
        amount=D("250.00"),
        trans_time=datetime.datetime.now(tz=NAIROBI) - datetime.timedelta(minutes=5),
    )
    transaction_process(trans_id=tx.trans_id)

    visible = MpesaTransaction.objects.visible_to(officer)
    assert visible.count() == 1
    stats = payment_stats(queryset=visible)
    assert stats["periods"]["today"]["received"] == {"count": 1, "amount": D("250.00")}
