"""The matcher's strategies, as pure functions over a dictionary-backed directory."""

import datetime
from decimal import Decimal as D

import pytest

from core.names import name_tokens
from core.phones import msisdn_hash
from payments.matching import (
    BorrowerCandidate,
    LoanCandidate,
    PaymentFacts,
    choose_loan,
    loan_number_candidates,
    match_payment,
    names_fit,
)

TODAY = datetime.date(2026, 11, 26)
TOLERANCE = D("10.00")


class FakeDirectory:
    def __init__(self):
        self.borrowers = {
            1: BorrowerCandidate(1, "Nicholas Kiprono Mutai"),
            2: BorrowerCandidate(2, "Achieng Odhiambo"),
            3: BorrowerCandidate(3, "Nicholas Ouma"),
        }
        self.phones = {"+254712345126": 1, "+254722000000": 2, "+254713000126": 3}
        self.national_ids = {"12345678": 2}
        self.masked_lookups = []
        self.loans = [
            LoanCandidate(10, "LOAN-000123", 1, "active", TODAY + datetime.timedelta(days=5), D("1500.00")),
            LoanCandidate(11, "LOAN-000124", 2, "active", TODAY + datetime.timedelta(days=20), D("3000.00")),
            LoanCandidate(12, "LOAN-000125", 2, "active", TODAY + datetime.timedelta(days=2), D("800.00")),
            LoanCandidate(13, "LOAN-000126", 2, "paid", TODAY - datetime.timedelta(days=30), D("0.00")),
            LoanCandidate(14, "HG/2023/45", 2, "active", TODAY + datetime.timedelta(days=40), D("5000.00")),
        ]

    def loan_by_numbers(self, numbers):
        for number in numbers:
            for loan in self.loans:
                if loan.loan_number == number:
                    return loan
        return None

    def borrower_by_phone(self, e164):
        return self.borrowers.get(self.phones.get(e164))

    def borrower_by_national_id(self, national_id):
        return self.borrowers.get(self.national_ids.get(national_id))

    def borrower_by_msisdn_hash(self, digest):
        for number, borrower_id in self.phones.items():
            if msisdn_hash(number) == digest:
                return self.borrowers[borrower_id]
        return None

    def borrowers_by_masked_msisdn(self, prefix, suffix, names):
        self.masked_lookups.append((prefix, suffix, set(names)))
        fitting = {
            b: self.borrowers[b]
            for number, b in self.phones.items()
            if number[1:].startswith(prefix)
            and number.endswith(suffix)
            and set(names) <= name_tokens(self.borrowers[b].full_name)
        }
        return list(fitting.values())[:2]

    def active_loans(self, borrower_id):
        return [loan for loan in self.loans if loan.borrower_id == borrower_id and loan.status == "active"]


def facts(
    amount="1500.00", bill_reference="", msisdn="", kind="missing", e164=None, first="", middle="", last=""
):
    return PaymentFacts(D(amount), bill_reference, msisdn, kind, e164, first, middle, last)


def match(payment):
    return match_payment(payment, FakeDirectory(), TOLERANCE)


@pytest.mark.parametrize(
    "reference",
    ["LOAN-000123", "loan 123", "Loan000123", "000123", "123", " l o a n - 0 0 0 1 2 3 ", "loan_123"],
)
def test_bill_reference_names_a_loan_loosely(reference):
    result = match(facts(bill_reference=reference))
    assert (result.borrower_id, result.loan.loan_number) == (1, "LOAN-000123")
    assert (result.identified_by, result.match_strategy) == ("bill_reference", "bill_reference")
    assert result.notes == [f"bill reference {reference!r} matched LOAN-000123"]


def test_imported_loan_numbers_match_as_typed():
    result = match(facts(bill_reference="hg/2023/45"))
    assert result.loan.loan_number == "HG/2023/45"


def test_long_bare_numbers_are_not_read_as_loan_numbers():
    assert loan_number_candidates("12345678")[0] != "LOAN-12345678"
    assert loan_number_candidates("LOAN12345678")[0] == "LOAN-12345678"
    assert loan_number_candidates("0") == ["0"]


def test_someone_else_paying_a_borrowers_loan_is_recorded():
    payer_hash = msisdn_hash("+254722000000")
    result = match(facts(bill_reference="LOAN-000123", msisdn=payer_hash, kind="hashed"))
    assert (result.borrower_id, result.payer_borrower_id) == (1, 2)
    assert "paid by another borrower, #2" in result.notes


def test_reference_to_a_paid_loan_identifies_its_borrower_then_chooses_a_loan():
    result = match(facts(amount="805.00", bill_reference="LOAN-000126"))
    assert result.borrower_id == 2
    assert (result.identified_by, result.match_strategy) == ("bill_reference", "amount")
    assert result.loan.loan_number == "LOAN-000125"
    assert "which is paid" in result.notes[0]


@pytest.mark.parametrize(
    "reference", ["0722000000", "+254 722 000 000", "254722000000", "12345678", " 1234 5678 "]
)
def test_payer_reference_phone_or_national_id(reference):
    result = match(facts(amount="100", bill_reference=reference))
    assert (result.borrower_id, result.identified_by) == (2, "payer_reference")
    assert result.match_strategy == "oldest_due"
    assert result.loan.loan_number == "LOAN-000125"


def test_hashed_msisdn_identifies_the_borrower():
    result = match(facts(msisdn=msisdn_hash("+254712345126"), kind="hashed"))
    assert (result.borrower_id, result.identified_by, result.match_strategy) == (1, "msisdn", "single_loan")
    assert result.notes[-1] == "LOAN-000123 is the borrower's only active loan"


def test_plain_msisdn_identifies_the_borrower():
    result = match(facts(msisdn="254722000000", kind="plain", e164="+254722000000", amount="2995"))
    assert (result.borrower_id, result.match_strategy, result.loan.loan_number) == (
        2,
        "amount",
        "LOAN-000124",
    )


def test_masked_msisdn_alone_identifies_nobody():
    result = match(facts(msisdn="2547 ***** 126", kind="masked"))
    assert not result.matched
    assert "masked number alone never identifies anyone" in result.notes[0]


def test_masked_msisdn_confirms_the_one_candidate_whose_names_fit():
    # Two borrowers' numbers fit 2547*****126; only one is called Nicholas Mutai.
    result = match(facts(msisdn="2547 ***** 126", kind="masked", first="NICHOLAS", last="MUTAI"))
    assert (result.borrower_id, result.identified_by) == (1, "msisdn")


def test_masked_msisdn_with_names_that_fit_two_candidates_stays_unmatched():
    result = match(facts(msisdn="2547 ***** 126", kind="masked", first="NICHOLAS"))
    assert not result.matched
    assert result.notes == [
        "nothing identified the payer: bill reference '', MSISDN masked (a masked number alone never identifies anyone)"
    ]


def test_the_directory_is_asked_by_the_mask_and_the_payers_names():
    directory = FakeDirectory()
    payment = facts(msisdn="254712***126", kind="masked", first="Nicholas", middle="K.", last="MUTAI-")
    assert match_payment(payment, directory, TOLERANCE).borrower_id == 1
    assert directory.masked_lookups == [("254712", "126", {"nicholas", "mutai"})]
    # Without a name (or a mask to read) nobody could be confirmed: the directory is not asked.
    for payment in (
        facts(msisdn="2547 ***** 126", kind="masked", first="J."),
        facts(msisdn="***", kind="masked"),
    ):
        assert match_payment(payment, directory, TOLERANCE).borrower_id is None
    assert len(directory.masked_lookups) == 1


def test_a_candidate_whose_names_do_not_fit_is_not_confirmed():
    class StaleDirectory(FakeDirectory):
        def borrowers_by_masked_msisdn(self, prefix, suffix, names):
            return [self.borrowers[3]]  # "Nicholas Ouma", whatever the names

    payment = facts(msisdn="2547 ***** 126", kind="masked", first="NICHOLAS", last="MUTAI")
    assert not match_payment(payment, StaleDirectory(), TOLERANCE).matched


def test_nothing_identified_is_unmatched_with_a_reason():
    result = match(facts(bill_reference="rent march", msisdn=msisdn_hash("+254799999999"), kind="hashed"))
    assert not result.matched and result.loan is None
    assert result.notes == ["nothing identified the payer: bill reference 'rent march', MSISDN hashed"]


def loans(*outstandings_and_days):
    return [
        LoanCandidate(i, f"LOAN-{i:06d}", 1, "active", TODAY + datetime.timedelta(days=days), D(amount))
        for i, (amount, days) in enumerate(outstandings_and_days, start=1)
    ]


def test_choose_single_loan():
    loan, strategy, _ = choose_loan(loans(("100", 3)), D("5000"), TOLERANCE)
    assert (loan.id, strategy) == (1, "single_loan")


def test_choose_by_amount_within_tolerance_closest_wins():
    loan, strategy, note = choose_loan(loans(("1000", 1), ("1508", 9), ("1495", 30)), D("1500"), TOLERANCE)
    assert (loan.id, strategy) == (3, "amount")
    assert note == "KES 1,500.00 is within KES 10.00 of LOAN-000003's outstanding KES 1,495.00"


def test_choose_by_amount_tie_goes_to_the_oldest_due():
    loan, strategy, _ = choose_loan(loans(("1505", 9), ("1495", 4), ("7000", 1)), D("1500"), TOLERANCE)
    assert (loan.id, strategy) == (2, "amount")


def test_tolerance_is_inclusive_and_respected():
    assert choose_loan(loans(("1510", 9), ("50", 1)), D("1500"), TOLERANCE)[1] == "amount"
    assert choose_loan(loans(("1510.01", 9), ("50", 1)), D("1500"), TOLERANCE)[1] == "oldest_due"


def test_otherwise_oldest_due():
    loan, strategy, _ = choose_loan(loans(("5000", 9), ("7000", -3), ("9000", 1)), D("200"), TOLERANCE)
    assert (loan.id, strategy) == (2, "oldest_due")


def test_no_active_loan_means_credit():
    assert choose_loan([], D("200"), TOLERANCE)[:2] == (None, "credit")


def test_names_fit_ignores_case_and_order_but_needs_every_name():
    borrower = BorrowerCandidate(1, "Nicholas Kiprono Mutai")
    assert names_fit(facts(first="MUTAI", last="nicholas"), borrower)
    assert not names_fit(facts(first="NICHOLAS", last="OUMA"), borrower)
    assert not names_fit(facts(), borrower)


class AmbiguousDirectory(FakeDirectory):
    """LOAN-654321 belongs to borrower 1 (the "stranger"); 654321 is also borrower 2's national ID."""

    def __init__(self):
        super().__init__()
        self.national_ids = {"654321": 2}
        self.loans.append(LoanCandidate(20, "LOAN-654321", 1, "active", TODAY, D("900.00")))


def test_a_bare_number_that_is_also_someone_elses_national_id_is_left_for_staff():
    result = match_payment(facts(bill_reference="654321"), AmbiguousDirectory(), TOLERANCE)
    assert not result.matched
    assert "both a loan number of borrower #1 and the national ID of borrower #2" in result.notes[0]


def test_the_payer_settles_an_ambiguous_bare_number():
    by_holder = facts(bill_reference="654321", msisdn=msisdn_hash("+254722000000"), kind="hashed")
    result = match_payment(by_holder, AmbiguousDirectory(), TOLERANCE)
    assert (result.borrower_id, result.identified_by) == (2, "payer_reference")
    by_loan_owner = facts(bill_reference="654321", msisdn=msisdn_hash("+254712345126"), kind="hashed")
    result = match_payment(by_loan_owner, AmbiguousDirectory(), TOLERANCE)
    assert (result.borrower_id, result.loan.loan_number) == (1, "LOAN-654321")


def test_a_prefixed_loan_number_is_never_ambiguous():
    result = match_payment(facts(bill_reference="LOAN 654321"), AmbiguousDirectory(), TOLERANCE)
    assert (result.borrower_id, result.match_strategy) == (1, "bill_reference")
