"""The M-Pesa benchmark's data: a loan portfolio built with set-based SQL, and C2B payloads for it.

``portfolio_build`` replaces the portfolio in one transaction of a few INSERT ... SELECT statements
over ``generate_series`` (a million loans take well under two minutes); the ORM would take hours.
Borrowers get 1, 2 or 3 loans (70/15/15%), a phone ``+2547[12]xxxxxxx`` and its MSISDN digest
(SHA-256 of ``2547...``, computed by PostgreSQL), the phone's masked-number keys (as
``core.names.masked_phone_keys`` makes them), a national ID (80%) and a loan officer.
``Payloads`` samples that portfolio into bodies shaped like
``tests/fixtures/daraja/confirmation_hashed.json``, or with the number masked as M-Pesa masks it
(``2547 ***** 126``).
"""

from __future__ import annotations

import hashlib
import json
import random
import string
import time
from collections import Counter
from datetime import datetime
from decimal import Decimal

from core.dates import NAIROBI
from core.names import PAIRED_TOKENS

SHORT_CODE = "600984"

FIRST_NAMES = ["Jane", "John", "Mary", "Peter", "Grace", "Joseph", "Faith", "David", "Mercy", "Samuel"]
LAST_NAMES = ["Wanjiru", "Otieno", "Kamau", "Achieng", "Mwangi", "Njeri", "Kiprop", "Wafula", "Chebet"]
UNKNOWN_REFERENCES = ["", "", "RENT", "SCHOOL FEES", "SHOP", "CHAMA", "HOUSE B4"]
AMOUNTS = [100, 200, 250, 300, 500, 500, 750, 1000, 1000, 1200, 1500, 2000, 2500, 3000, 5000]

_TRUNCATE = """
TRUNCATE payments_allocation, payments_mpesatransaction, payments_callbackrequest, core_repayment,
    core_creditentry, core_auditevent, core_outboxmessage, core_loan, core_maskedphonekey, core_borrowerphone,
    core_borrower, bench_bare_request
RESTART IDENTITY CASCADE
"""
# Borrower g gets 1, 2 or 3 loans (70/15/15%) from a hash of g, and the running total gives each
# borrower its first loan serial; borrowers past the requested loan count are dropped.
_PLAN = """
CREATE TEMP TABLE bench_plan ON COMMIT DROP AS
SELECT borrower_id, loans, sum(loans) OVER (ORDER BY borrower_id) - loans AS loans_before
FROM (
    SELECT g AS borrower_id, CASE WHEN bucket < 70 THEN 1 WHEN bucket < 85 THEN 2 ELSE 3 END AS loans
    FROM (
        SELECT g, (hashint4(g)::bigint + 2147483648) %% 100 AS bucket
        FROM generate_series(1, %(loans)s) AS g
    ) AS hashed
) AS counted
"""
_PLAN_TRIM = "DELETE FROM bench_plan WHERE loans_before >= %(loans)s"
_BORROWERS = """
INSERT INTO core_borrower (id, full_name, national_id, preferred_language, credit_balance,
                           loan_officer_id, created_at, updated_at)
SELECT borrower_id,
       (%(first_names)s::text[])[1 + floor(random() * cardinality(%(first_names)s::text[]))::int]
           || ' ' || (%(last_names)s::text[])[1 + floor(random() * cardinality(%(last_names)s::text[]))::int],
       CASE WHEN random() < 0.8 THEN (20000000 + borrower_id)::text END,
       CASE WHEN random() < 0.75 THEN 'en' ELSE 'sw' END,
       0,
       (%(officers)s::bigint[])[1 + borrower_id %% cardinality(%(officers)s::bigint[])],
       now() - make_interval(days => floor(random() * 700)::int),
       now()
FROM bench_plan
"""
# 2547[12]xxxxxxx: 7919 is invertible modulo 10^7, so borrowers of one parity never share a number.
# Unknown payers in the payloads use 2547 9x, which no borrower has.
_PHONES = """
INSERT INTO core_borrowerphone (borrower_id, number, msisdn_hash, is_primary, created_at, delivery_failures)
SELECT borrower_id, '+' || msisdn, encode(sha256(convert_to(msisdn, 'UTF8')), 'hex'), true, now(), 0
FROM (
    SELECT borrower_id,
           '2547' || (1 + borrower_id %% 2)::text
               || lpad(((borrower_id::bigint * 7919 + 12345) %% 10000000)::text, 7, '0') AS msisdn
    FROM bench_plan
) AS numbered
"""
# The keys of core.names.masked_phone_keys for every phone at once. The parts after the digits are
# made once per distinct name: each distinct token of the name (letters of the lower-cased name,
# longer than one, in the order they first appear), each pair of the first PAIRED_TOKENS (in
# Python's order: COLLATE "C"), and "<token>+*" for the later ones; every phone then takes its
# name's parts under its last three digits. tests/core/test_masked_keys.py compares the two.
_MASKED_KEYS = """
WITH tokens AS (
    SELECT full_name, t.token, row_number() OVER (PARTITION BY full_name ORDER BY min(t.seen)) AS position
    FROM (SELECT DISTINCT full_name FROM core_borrower) AS names
    CROSS JOIN LATERAL regexp_split_to_table(lower(full_name), '[^a-z]+') WITH ORDINALITY AS t(token, seen)
    WHERE length(t.token) > 1
    GROUP BY full_name, t.token
),
parts AS (
    SELECT full_name, token AS part FROM tokens
    UNION ALL
    SELECT first.full_name, first.token || '+' || second.token
    FROM tokens AS first
    JOIN tokens AS second ON second.full_name = first.full_name AND first.token < second.token COLLATE "C"
    WHERE first.position <= %(paired)s AND second.position <= %(paired)s
    UNION ALL
    SELECT full_name, token || '+*' FROM tokens WHERE position > %(paired)s
)
INSERT INTO core_maskedphonekey (key, phone_id, borrower_id)
SELECT right(phone.number, 3) || ':' || parts.part, phone.id, phone.borrower_id
FROM core_borrowerphone AS phone
JOIN core_borrower AS borrower ON borrower.id = phone.borrower_id
JOIN parts ON parts.full_name = borrower.full_name
"""
_LOANS = """
INSERT INTO core_loan (id, loan_number, borrower_id, principal_disbursed, penalties, fees, interest,
                       principal, disbursed_on, due_date, status, loan_officer_id, paid_at, created_at,
                       updated_at)
SELECT serial,
       'LOAN-' || CASE WHEN serial < 1000000 THEN lpad(serial::text, 6, '0') ELSE serial::text END,
       borrower_id,
       disbursed,
       (ARRAY[0, 0, 0, 0, 150, 320.50])[1 + floor(random() * 6)::int],
       (ARRAY[0, 0, 0, 100, 250])[1 + floor(random() * 5)::int],
       round((random() * disbursed / 10)::numeric, 0),
       greatest(100, round((random() * disbursed)::numeric / 50) * 50),
       disbursed_on,
       disbursed_on + 30,
       'active',
       (%(officers)s::bigint[])[1 + borrower_id %% cardinality(%(officers)s::bigint[])],
       NULL,
       now(),
       now()
FROM (
    SELECT plan.borrower_id,
           plan.loans_before + s AS serial,
           (10 + floor(random() * 490)::int) * 100 AS disbursed,
           current_date - (1 + floor(random() * 120)::int) AS disbursed_on
    FROM bench_plan AS plan CROSS JOIN LATERAL generate_series(1, plan.loans) AS s
    WHERE plan.loans_before + s <= %(loans)s
) AS planned
"""
_RESEQUENCE = [
    "SELECT setval(pg_get_serial_sequence('core_borrower', 'id'), (SELECT max(id) FROM core_borrower))",
    "SELECT setval(pg_get_serial_sequence('core_loan', 'id'), (SELECT max(id) FROM core_loan))",
]

_LOAN_SAMPLE = """
SELECT l.id, l.loan_number, l.penalties + l.fees + l.interest + l.principal, b.full_name, p.number,
       p.msisdn_hash
FROM core_loan AS l
JOIN core_borrower AS b ON b.id = l.borrower_id
JOIN core_borrowerphone AS p ON p.borrower_id = b.id AND p.is_primary
WHERE l.id = ANY(%s)
"""
_BORROWER_SAMPLE = """
SELECT b.id, b.full_name, p.number, p.msisdn_hash
FROM core_borrower AS b JOIN core_borrowerphone AS p ON p.borrower_id = b.id AND p.is_primary
WHERE b.id = ANY(%s)
"""

# A table's unique constraints, then its other indexes (no constraint behind them; the primary
# key's is one, and stays).
_UNIQUE_CONSTRAINTS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = %(table)s::regclass AND contype = 'u'
ORDER BY conname
"""
_PLAIN_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
WHERE schemaname = current_schema() AND tablename = %(table)s
  AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %(table)s::regclass)
ORDER BY indexname
"""


def _drop_indexes(cursor, table: str) -> list[str]:
    """Drop the unique constraints and other secondary indexes of ``table`` (empty, about to be
    bulk loaded) and return the statements that put them back: millions of rows then cost one
    sorted build of each index, not an insert into each per row (PostgreSQL's own advice for
    populating a table)."""
    from django.db import connection

    quote = connection.ops.quote_name
    cursor.execute(_UNIQUE_CONSTRAINTS, {"table": table})
    constraints = cursor.fetchall()
    cursor.execute(_PLAIN_INDEXES, {"table": table})
    indexes = cursor.fetchall()
    # Only names read from the catalog are interpolated, quoted.
    for name, _ in constraints:
        cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {quote(name)}")
    return [definition for _, definition in indexes] + [
        f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}"
        for name, definition in constraints
    ]


def portfolio_build(*, loans: int, officer_ids: list[int]) -> dict:
    """Replace the portfolio with ``loans`` active loans; returns counts and the seconds it took."""
    from django.db import connection, transaction

    from core.services.loans import loan_number_counter_raise_to

    started = time.perf_counter()
    params = {
        "loans": loans,
        "first_names": FIRST_NAMES,
        "last_names": LAST_NAMES,
        "officers": officer_ids,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_TRUNCATE)
        cursor.execute("SELECT setseed(0.20250101)")
        cursor.execute(_PLAN, params)
        cursor.execute(_PLAN_TRIM, params)
        cursor.execute(_BORROWERS, params)
        borrowers = cursor.rowcount
        cursor.execute(_PHONES, params)
        restore = _drop_indexes(cursor, "core_maskedphonekey")
        cursor.execute(_MASKED_KEYS, {"paired": PAIRED_TOKENS})
        for statement in restore:
            cursor.execute(statement)
        cursor.execute(_LOANS, params)
        built = cursor.rowcount
        for statement in _RESEQUENCE:
            cursor.execute(statement)
    loan_number_counter_raise_to(loans)
    with connection.cursor() as cursor:
        # Settle the bulk load before anything is measured: VACUUM sets the visibility and hint bits
        # the first readers would otherwise write, and CHECKPOINT flushes the dirty pages, so neither
        # autovacuum nor a checkpoint runs in the middle of a measurement of the bigger portfolio.
        cursor.execute("VACUUM (ANALYZE) core_borrower, core_borrowerphone, core_maskedphonekey, core_loan")
        cursor.execute("CHECKPOINT")
    return {"loans": built, "borrowers": borrowers, "seconds": time.perf_counter() - started}


# --- payloads -------------------------------------------------------------------------------------


class Payloads:
    """Realistic C2B bodies for the portfolio in the database, with TransIDs unique for the whole run."""

    MIX = (("loan_number", 0.5), ("msisdn_only", 0.3), ("phone_reference", 0.1), ("unknown", 0.1))

    def __init__(self, *, seed: int) -> None:
        self.rng = random.Random(seed)
        self.trans_ids: set[str] = set()
        self.org_balance = Decimal("1250000.00")
        self.loans = 0
        self.borrowers = 0

    def use_portfolio(self, *, loans: int, borrowers: int) -> None:
        self.loans, self.borrowers = loans, borrowers

    def _trans_id(self) -> str:
        alphabet = string.ascii_uppercase + string.digits
        while True:
            trans_id = "T" + "".join(self.rng.choices(alphabet, k=9))
            if trans_id not in self.trans_ids:
                self.trans_ids.add(trans_id)
                return trans_id

    def _loan_reference(self, loan_number: str) -> str:
        serial = int(loan_number.removeprefix("LOAN-"))
        forms = [
            loan_number,
            f"loan {serial}",
            f"Loan{serial:06d}",
            f"{serial}",
            f"{serial:06d}",
            f"loan-{serial}",
            f" LOAN {serial:06d} ",
        ]
        return self.rng.choice(forms)

    def _phone_reference(self, e164: str) -> str:
        local = e164.removeprefix("+254")
        forms = [f"0{local}", f"254{local}", f"+254{local}", local, f"0{local[:3]} {local[3:6]} {local[6:]}"]
        return self.rng.choice(forms)

    def _amount(self) -> Decimal:
        if self.rng.random() < 0.1:
            return Decimal(self.rng.randrange(1000, 500000)) / 100
        return Decimal(self.rng.choice(AMOUNTS))

    def batch(
        self, count: int, mix: tuple[tuple[str, float], ...] | None = None
    ) -> tuple[list[str], list[str], Counter]:
        """``count`` bodies (JSON text) in the payload ``mix`` (default ``MIX``); returns the bodies,
        their TransIDs and the mix."""
        from django.db import connection

        mix = mix or self.MIX
        kinds = []
        for kind, share in mix[:-1]:
            kinds += [kind] * round(count * share)
        kinds += [mix[-1][0]] * (count - len(kinds))
        self.rng.shuffle(kinds)
        loan_ids = [self.rng.randint(1, self.loans) for kind in kinds if kind == "loan_number"]
        borrower_ids = [self.rng.randint(1, self.borrowers) for kind in kinds if kind != "loan_number"]
        with connection.cursor() as cursor:
            cursor.execute(_LOAN_SAMPLE, [sorted(set(loan_ids))])
            loans = {row[0]: row for row in cursor.fetchall()}
            cursor.execute(_BORROWER_SAMPLE, [sorted(set(borrower_ids))])
            borrowers = {row[0]: row for row in cursor.fetchall()}
        loan_picks, borrower_picks = iter(loan_ids), iter(borrower_ids)
        now = datetime.now(NAIROBI)
        bodies, trans_ids = [], []
        for kind in kinds:
            amount = self._amount()
            if kind == "loan_number":
                _, loan_number, outstanding, full_name, _, digest = loans[next(loan_picks)]
                reference = self._loan_reference(loan_number)
                if outstanding > 0 and self.rng.random() < 0.1:
                    amount = outstanding  # paying the loan off
            else:
                _, full_name, number, digest = borrowers[next(borrower_picks)]
                reference = ""
                if kind == "phone_reference":
                    reference = self._phone_reference(number)
                elif kind == "unknown":
                    stranger = f"25479{self.rng.randrange(10_000_000):07d}"
                    digest = _sha256(stranger)
                    full_name = f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"
                    reference = self.rng.choice(UNKNOWN_REFERENCES)
            body, trans_id = self.body(
                amount=amount,
                reference=reference,
                msisdn=digest,
                first_name=full_name.split()[0].upper(),
                now=now,
            )
            bodies.append(body)
            trans_ids.append(trans_id)
        return bodies, trans_ids, Counter(kinds)

    def body(
        self,
        *,
        amount: Decimal,
        reference: str,
        msisdn: str,
        first_name: str,
        last_name: str = "",
        now: datetime,
    ) -> tuple[str, str]:
        """One confirmation body (JSON text) with a fresh TransID, the paybill's balance after it; returns
        it and its TransID."""
        self.org_balance += amount
        trans_id = self._trans_id()
        payload = {
            "TransactionType": "Pay Bill",
            "TransID": trans_id,
            "TransTime": now.strftime("%Y%m%d%H%M%S"),
            "TransAmount": f"{amount:.2f}",
            "BusinessShortCode": SHORT_CODE,
            "BillRefNumber": reference,
            "InvoiceNumber": "",
            "OrgAccountBalance": f"{self.org_balance:.2f}",
            "ThirdPartyTransID": "",
            "MSISDN": msisdn,
            "FirstName": first_name,
            "MiddleName": "",
            "LastName": last_name,
        }
        return json.dumps(payload), trans_id

    def masked_batch(self, count: int, *, usable_account: bool) -> tuple[list[str], list[str], Counter]:
        """``count`` bodies (JSON text) paid from borrowers' numbers masked as M-Pesa masks them
        (``2547 ***** 126``), with the borrower's first name in capitals (and, for about half, the
        last name too), and an account number that names one of the borrower's loans
        (``usable_account``) or is empty: ``kind_batch`` for masked payers. Returns the bodies,
        their TransIDs and the mix."""
        bodies, trans_ids = kind_batch(self, count, payer="masked", usable_account=usable_account)
        return bodies, trans_ids, Counter({"masked_loan_number" if usable_account else "masked_only": count})


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --- payloads by payer kind ------------------------------------------------------------------------

PAYER_KINDS = ("hashed", "masked", "plain")


def mask_msisdn(msisdn: str) -> str:
    """``254712345678`` as M-Pesa masks it for many paybills: ``2547 ***** 678``."""
    return f"{msisdn[:4]} ***** {msisdn[-3:]}"


def kind_batch(
    payloads: Payloads, count: int, *, payer: str, usable_account: bool
) -> tuple[list[str], list[str]]:
    """``count`` bodies from borrowers of the portfolio, all of one payer kind: MSISDN as its digest
    (``hashed``), masked (``masked``, with the payer's first name and, for half of them, last name, as
    M-Pesa gives them) or plain (``2547...``); the account number a loan reference of the payer
    (``usable_account``) or empty. Returns the bodies and their TransIDs."""
    from django.db import connection

    loan_ids = [payloads.rng.randint(1, payloads.loans) for _ in range(count)]
    with connection.cursor() as cursor:
        cursor.execute(_LOAN_SAMPLE, [sorted(set(loan_ids))])
        loans = {row[0]: row for row in cursor.fetchall()}
    now = datetime.now(NAIROBI)
    bodies, trans_ids = [], []
    for loan_id in loan_ids:
        _, loan_number, _, full_name, number, digest = loans[loan_id]
        msisdn = number.removeprefix("+")
        names = full_name.upper().split()
        last_name = names[-1] if payer == "masked" and payloads.rng.random() < 0.5 else ""
        amount = payloads._amount()
        body, trans_id = payloads.body(
            amount=amount,
            reference=payloads._loan_reference(loan_number) if usable_account else "",
            msisdn={"hashed": digest, "masked": mask_msisdn(msisdn), "plain": msisdn}[payer],
            first_name=names[0],
            last_name=last_name,
            now=now,
        )
        bodies.append(body)
        trans_ids.append(trans_id)
    return bodies, trans_ids


def unknown_batch(payloads: Payloads, count: int) -> tuple[list[str], list[str]]:
    """``count`` bodies from payers nobody knows (hashed numbers no borrower has, an account number
    that names nothing): each ends ``unmatched``."""
    bodies, trans_ids, _ = payloads.batch(count, mix=(("unknown", 1.0),))
    return bodies, trans_ids
