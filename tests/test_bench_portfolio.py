"""The bench's portfolio (bench/portfolio.py): its SQL makes the masked-number keys the code makes,
and its masked payloads look as M-Pesa's do and name real borrowers."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from bench.bare import BARE_TABLE, BARE_TABLE_DDL
from bench.portfolio import _MASKED_KEYS, Payloads, portfolio_build
from core.models import Borrower, BorrowerPhone, Loan, MaskedPhoneKey
from core.names import PAIRED_TOKENS, name_tokens
from core.services import masked_keys_rebuild
from payments.matching import loan_number_candidates
from payments.parsing import classify_msisdn
from tests.factories import BorrowerFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres("the portfolio is built with PostgreSQL's SQL"),
]

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "daraja" / "confirmation_masked.json"


@pytest.fixture
def portfolio(officer):
    with connection.cursor() as cursor:
        cursor.execute(BARE_TABLE_DDL)  # emptied with the portfolio
    try:
        yield portfolio_build(loans=300, officer_ids=[officer.pk])
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {BARE_TABLE}")


def stored_keys() -> set[tuple[int, int, str]]:
    return set(MaskedPhoneKey.objects.values_list("phone_id", "borrower_id", "key"))


def test_the_portfolio_has_the_keys_masked_keys_rebuild_makes(portfolio):
    built = stored_keys()
    phones = BorrowerPhone.objects.count()
    assert phones == portfolio["borrowers"] > 100
    # Two names each: two tokens and their pair.
    assert len(built) == 3 * phones
    assert masked_keys_rebuild(borrower_ids=Borrower.objects.values_list("id", flat=True)) == len(built)
    assert stored_keys() == built


def test_the_sql_reads_names_as_the_code_does():
    for position, full_name in enumerate(
        [
            "Mary-Jane  O'NEIL",
            "Aa Bb Cc Dd Ee Ff Gg Bb aa",  # past PAIRED_TOKENS, repeated, in two cases
            "Zoë Wanjirũ Kamau",
            "KAMAU kamau Kamau",
            "X",
            " j. otieno2nd ",
            "Achieng Odhiambo",
        ]
    ):
        BorrowerFactory(full_name=full_name, phones=[f"+25471234{position:04d}", f"+25411000{position:04d}"])
    by_code = stored_keys()
    assert len(by_code) == 2 * (6 + 19 + 6 + 1 + 0 + 3 + 3)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE core_maskedphonekey")
        cursor.execute(_MASKED_KEYS, {"paired": PAIRED_TOKENS})
    assert stored_keys() == by_code


@pytest.mark.parametrize("usable_account", [True, False])
def test_masked_payloads_name_a_borrower_by_masked_number_and_names(portfolio, usable_account):
    payloads = Payloads(seed=7)
    payloads.use_portfolio(loans=portfolio["loans"], borrowers=portfolio["borrowers"])
    bodies, trans_ids, mix = payloads.masked_batch(20, usable_account=usable_account)

    assert mix == Counter({"masked_loan_number" if usable_account else "masked_only": 20})
    assert len(set(trans_ids)) == 20
    shape = set(json.loads(FIXTURE.read_text()))
    with_last_name = 0
    for body, trans_id in zip(bodies, trans_ids, strict=True):
        payload = json.loads(body)
        assert set(payload) == shape and payload["TransID"] == trans_id
        assert re.fullmatch(r"2547 \*{5} \d{3}", payload["MSISDN"])
        assert classify_msisdn(payload["MSISDN"]) == ("masked", None)
        given = [payload["FirstName"], payload["LastName"]]
        assert all(name == name.upper() for name in given) and payload["FirstName"]
        with_last_name += bool(payload["LastName"])
        # Someone whose number fits the mask and whose name holds the names paid.
        payers = [
            borrower
            for borrower in Borrower.objects.filter(phones__number__endswith=payload["MSISDN"][-3:])
            if name_tokens(*given) <= name_tokens(borrower.full_name)
        ]
        assert payers
        if usable_account:
            loan = Loan.objects.get(loan_number=loan_number_candidates(payload["BillRefNumber"])[0])
            assert loan.borrower in payers
        else:
            assert payload["BillRefNumber"] == ""
    assert 0 < with_last_name < 20
