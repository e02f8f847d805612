"""A masked number (``2547 ***** 126``) and the payer's names, looked up in the database
(``DatabaseDirectory.borrowers_by_masked_msisdn`` on the masked-number keys)."""

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.portfolio import FIRST_NAMES, LAST_NAMES
from core.models import Borrower
from core.services import masked_keys_rebuild
from payments.matching import BorrowerCandidate, PaymentFacts, match_payment
from payments.selectors import DatabaseDirectory
from tests.factories import BorrowerFactory

pytestmark = pytest.mark.django_db

UNMATCHED_NOTE = "nothing identified the payer: bill reference '', MSISDN masked (a masked number alone never identifies anyone)"


@pytest.fixture
def nicholas(db) -> Borrower:
    return BorrowerFactory(full_name="Nicholas Kiprono Mutai", phones=["+254712345126"])


@pytest.fixture
def others(db) -> list[Borrower]:
    return [
        BorrowerFactory(full_name="Nicholas Ouma", phones=["+254713000126"]),
        BorrowerFactory(full_name="Mutai Nicholas Kiprop", phones=["+254110000126"]),  # another prefix
        BorrowerFactory(full_name="Nicholas Kiprono Mutai", phones=["+254712345127"]),  # another suffix
    ]


def lookup(prefix: str, suffix: str, *names: str) -> list[BorrowerCandidate]:
    return DatabaseDirectory().borrowers_by_masked_msisdn(prefix, suffix, set(names))


def masked(msisdn: str = "2547 ***** 126", first: str = "", middle: str = "", last: str = "") -> PaymentFacts:
    return PaymentFacts(Decimal("500.00"), "", msisdn, "masked", None, first, middle, last)


def test_the_lookup_finds_the_one_borrower_whose_names_fit(nicholas, others):
    assert lookup("2547", "126", "nicholas", "mutai") == [
        BorrowerCandidate(nicholas.pk, "Nicholas Kiprono Mutai")
    ]
    assert lookup("2547", "126", "kiprono") == [BorrowerCandidate(nicholas.pk, "Nicholas Kiprono Mutai")]
    assert lookup("254712", "126", "mutai", "kiprono", "nicholas") == [
        BorrowerCandidate(nicholas.pk, "Nicholas Kiprono Mutai")
    ]
    result = match_payment(masked(first="NICHOLAS", last="MUTAI"), DatabaseDirectory(), Decimal("10"))
    assert (result.borrower_id, result.identified_by, result.match_strategy) == (
        nicholas.pk,
        "msisdn",
        "credit",
    )
    assert (
        result.notes[0]
        == f"masked MSISDN 2547 ***** 126 and the payer's names fit borrower #{nicholas.pk} only"
    )


def test_two_borrowers_whose_names_fit_identify_nobody(nicholas, others):
    assert [borrower.id for borrower in lookup("2547", "126", "nicholas")] == [nicholas.pk, others[0].pk]
    result = match_payment(masked(first="NICHOLAS"), DatabaseDirectory(), Decimal("10"))
    assert (result.borrower_id, result.notes) == (None, [UNMATCHED_NOTE])


def test_at_most_two_borrowers_come_back(nicholas, others):
    BorrowerFactory(full_name="Nicholas Wekesa", phones=["+254799999126"])
    assert len(lookup("2547", "126", "nicholas")) == 2


def test_a_prefix_that_does_not_fit_finds_nobody(nicholas, others):
    assert lookup("2541", "126", "nicholas", "mutai") == [
        BorrowerCandidate(others[1].pk, "Mutai Nicholas Kiprop")
    ]
    assert lookup("25472", "126", "nicholas", "mutai") == []
    assert lookup("2547", "226", "nicholas", "mutai") == []


def test_a_longer_visible_suffix_must_fit_whole(nicholas, others):
    assert lookup("2547", "5126", "nicholas") == [BorrowerCandidate(nicholas.pk, "Nicholas Kiprono Mutai")]
    assert lookup("2547", "4126", "nicholas") == []


def test_a_given_name_that_does_not_fit_finds_nobody(nicholas, others):
    assert lookup("2547", "126", "nicholas", "mutai", "wekesa") == []
    assert lookup("2547", "126", "wekesa", "nicholas") == []
    result = match_payment(
        masked(first="NICHOLAS", middle="WEKESA", last="MUTAI"), DatabaseDirectory(), Decimal("10")
    )
    assert (result.borrower_id, result.notes) == (None, [UNMATCHED_NOTE])


def test_a_long_name_is_found_by_its_later_names_too():
    long_named = BorrowerFactory(full_name="Aa Bb Cc Dd Ee Ff Gg", phones=["+254712345126"])
    BorrowerFactory(full_name="Aa Bb Ff", phones=["+254712345226"])  # another suffix
    found = [BorrowerCandidate(long_named.pk, "Aa Bb Cc Dd Ee Ff Gg")]
    assert lookup("2547", "126", "aa", "ff") == found  # one of the first five, one past them
    assert lookup("2547", "126", "gg", "ff") == found  # both past them
    assert lookup("2547", "126", "gg", "ff", "bb") == found
    assert lookup("2547", "126", "gg", "ff", "hh") == []
    assert lookup("2547", "126", "ee") == found


def test_a_borrower_with_two_phones_that_fit_counts_once(nicholas, others):
    nicholas.phones.create(number="+254799000126")
    assert lookup("2547", "126", "kiprono", "mutai") == [
        BorrowerCandidate(nicholas.pk, "Nicholas Kiprono Mutai")
    ]
    result = match_payment(masked(first="NICHOLAS", last="KIPRONO"), DatabaseDirectory(), Decimal("10"))
    assert result.borrower_id == nicholas.pk


def test_the_lookup_follows_a_rename(nicholas, others, system_actor):
    from core.services import borrower_update

    borrower_update(borrower=nicholas, changes={"full_name": "Nicholas Wekesa"}, actor=system_actor)
    assert lookup("2547", "126", "nicholas", "mutai") == []
    assert lookup("2547", "126", "nicholas", "wekesa") == [BorrowerCandidate(nicholas.pk, "Nicholas Wekesa")]


# --- it does not grow with the portfolio -----------------------------------------------------------

# Borrowers whose phones all end in 126, named from the bench's lists (so "jane" has ~300 of them).
_SAME_DIGITS = """
WITH made AS (
    INSERT INTO core_borrower (full_name, preferred_language, credit_balance, created_at, updated_at)
    SELECT (%(first)s::text[])[1 + g %% cardinality(%(first)s::text[])]
               || ' ' || (%(last)s::text[])[1 + (g / 10) %% cardinality(%(last)s::text[])],
           'en', 0, now(), now()
    FROM generate_series(1, %(count)s) AS g
    RETURNING id
)
INSERT INTO core_borrowerphone (borrower_id, number, msisdn_hash, is_primary, created_at, delivery_failures)
SELECT id, number, encode(sha256(convert_to(number, 'UTF8')), 'hex'), true, now(), 0
FROM (SELECT id, '+2547' || lpad((row_number() OVER (ORDER BY id))::text, 5, '0') || '126' AS number FROM made) AS numbered
RETURNING borrower_id
"""


def _key_rows_read(sql: str) -> int:
    """How many rows of the key table a query reads (returned, or read and filtered out)."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        (plan,) = cursor.fetchone()
    plan = json.loads(plan) if isinstance(plan, str) else plan

    def read(node: dict) -> int:
        # A bitmap index scan has no relation: its rows are those of the heap scan above it.
        rows = 0
        if node.get("Relation Name") == "core_maskedphonekey":
            # Both counts are per loop.
            rows = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
        return rows + sum(read(child) for child in node.get("Plans", []))

    return read(plan[0]["Plan"])


@pytest.mark.postgres("the query plan and its row counts are PostgreSQL's")
def test_the_lookup_reads_a_handful_of_keys_among_thousands_of_numbers_with_the_same_digits(nicholas, others):
    with connection.cursor() as cursor:
        cursor.execute(_SAME_DIGITS, {"first": FIRST_NAMES, "last": LAST_NAMES, "count": 3000})
        built = [row[0] for row in cursor.fetchall()]
    masked_keys_rebuild(borrower_ids=built)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE core_borrower, core_borrowerphone, core_maskedphonekey")
    janes = Borrower.objects.filter(full_name__startswith="Jane ", phones__number__endswith="126").count()
    assert len(built) == 3000 and janes == 300

    for names, expected in (
        (("nicholas", "mutai"), [nicholas.pk]),
        (("mutai", "kiprono", "nicholas"), [nicholas.pk]),
        (
            ("jane",),
            sorted(Borrower.objects.filter(full_name__startswith="Jane ").values_list("id", flat=True))[:2],
        ),
        (("jane", "nicholas"), []),
    ):
        with CaptureQueriesContext(connection) as queries:
            found = lookup("2547", "126", *names)
        assert [borrower.id for borrower in found] == expected, names
        assert len(queries) == 1
        # Not the 3,000 numbers ending in 126, nor the 300 Janes among them: the first two keys of
        # one name, or the phones with the pair's key (one or two here) and the keys of each.
        assert _key_rows_read(queries[0]["sql"]) <= 20, names
