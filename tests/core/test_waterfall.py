from decimal import Decimal as D

from core.waterfall import Split, split_payment

BALANCES = Split(penalties=D("100.00"), fees=D("50.00"), interest=D("200.00"), principal=D("1000.00"))


def test_penalties_then_fees_then_interest_then_principal():
    applied, excess = split_payment(BALANCES, D("420.00"))
    assert applied == Split(
        penalties=D("100.00"), fees=D("50.00"), interest=D("200.00"), principal=D("70.00")
    )
    assert excess == D("0.00")


def test_partial_payment_stops_inside_a_part():
    applied, excess = split_payment(BALANCES, D("120.00"))
    assert applied == Split(penalties=D("100.00"), fees=D("20.00"), interest=D("0.00"), principal=D("0.00"))
    assert excess == 0


def test_amount_beyond_outstanding_comes_back_as_excess():
    applied, excess = split_payment(BALANCES, D("1400.50"))
    assert applied == BALANCES
    assert excess == D("50.50")
    assert applied.total + excess == D("1400.50")
