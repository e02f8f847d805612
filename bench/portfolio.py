"""The M-Pesa benchmark's data: a loan portfolio built with set-based SQL, and C2B payloads for it.

``portfolio_build`` replaces the portfolio in one transaction of a few INSERT ... SELECT statements
over ``generate_series`` (a million loans take well under two minutes); the ORM would take hours.
Borrowers get 1, 2 or 3 loans (70/15/15%), a phone ``+2547[12]xxxxxxx`` and its MSISDN digest
(SHA-256 of ``2547...``, computed by PostgreSQL), a national ID (80%) and a loan officer.
``Payloads`` samples that portfolio into bodies shaped like
``tests/fixtures/daraja/confirmation_hashed.json``.
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

SHORT_CODE = "600984"

FIRST_NAMES = ["Jane", "John", "Mary", "Peter", "Grace", "Joseph", "Faith", "David", "Mercy", "Samuel"]
LAST_NAMES = ["Wanjiru", "Otieno", "Kamau", "Achieng", "Mwangi", "Njeri", "Kiprop", "Wafula", "Chebet"]
UNKNOWN_REFERENCES = ["", "", "RENT", "SCHOOL FEES", "SHOP", "CHAMA", "HOUSE B4"]
AMOUNTS = [100, 200, 250, 300, 500, 500, 750, 1000, 1000, 1200, 1500, 2000, 2500, 3000, 5000]

_TRUNCATE = """
TRUNCATE payments_allocation, payments_mpesatransaction, payments_callbackrequest, core_repayment,
    core_creditentry, core_auditevent, core_outboxmessage, core_loan, core_borrowerphone, core_borrower,
    bench_bare_request
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
        cursor.execute(_LOANS, params)
        built = cursor.rowcount
        for statement in _RESEQUENCE:
            cursor.execute(statement)
    loan_number_counter_raise_to(loans)
    with connection.cursor() as cursor:
        # Settle the bulk load before anything is measured: VACUUM sets the visibility and hint bits
        # the first readers would otherwise write, and CHECKPOINT flushes the dirty pages, so neither
        # autovacuum nor a checkpoint runs in the middle of a measurement of the bigger portfolio.
        cursor.execute("VACUUM (ANALYZE) core_borrower, core_borrowerphone, core_loan")
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
                "MSISDN": digest,
                "FirstName": full_name.split()[0].upper(),
                "MiddleName": "",
                "LastName": "",
            }
            bodies.append(json.dumps(payload))
            trans_ids.append(trans_id)
        return bodies, trans_ids, Counter(kinds)


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
        payloads.org_balance += amount
        trans_id = payloads._trans_id()
        payload = {
            "TransactionType": "Pay Bill",
            "TransID": trans_id,
            "TransTime": now.strftime("%Y%m%d%H%M%S"),
            "TransAmount": f"{amount:.2f}",
            "BusinessShortCode": SHORT_CODE,
            "BillRefNumber": payloads._loan_reference(loan_number) if usable_account else "",
            "InvoiceNumber": "",
            "OrgAccountBalance": f"{payloads.org_balance:.2f}",
            "ThirdPartyTransID": "",
            "MSISDN": {"hashed": digest, "masked": mask_msisdn(msisdn), "plain": msisdn}[payer],
            "FirstName": names[0],
            "MiddleName": "",
            "LastName": last_name,
        }
        bodies.append(json.dumps(payload))
        trans_ids.append(trans_id)
    return bodies, trans_ids


def unknown_batch(payloads: Payloads, count: int) -> tuple[list[str], list[str]]:
    """``count`` bodies from payers nobody knows (hashed numbers no borrower has, an account number
    that names nothing): each ends ``unmatched``."""
    bodies, trans_ids, _ = payloads.batch(count, mix=(("unknown", 1.0),))
    return bodies, trans_ids
