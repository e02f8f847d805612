"""Processing a stored payment: match it, post it, record where the money went, queue the news.

``transaction_process`` is safe to call any number of times, from any number of workers: the
transaction row is locked first and a processed payment is never posted again. Lock order (as in
``core.services.loans``): the transaction row, then borrower rows by id, then loan rows by id.
"""

import functools
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from core.actors import Actor
from core.db import Columns, create_row, fetch_rows, for_update, save_fields
from core.exceptions import InvalidState, TemporarilyUnavailable
from core.models import Borrower, Loan, User
from core.money import ZERO, format_kes
from core.phones import try_normalize_phone
from core.queue import WorkQueue, claim_batch
from core.retry import RetryPolicy
from core.services import borrower_credit_add, repayment_apply
from core.services.outbox import outbox_queue, outbox_queue_for_staff, staff_to_alert
from payments import messages
from payments.matching import MatchResult, PaymentFacts, match_payment
from payments.metrics import processing_observe
from payments.models import Allocation, MpesaConfiguration, MpesaTransaction
from payments.parsing import C2BPayload
from payments.selectors import DatabaseDirectory

logger = logging.getLogger(__name__)

ENGINE = Actor.system("mpesa-engine")
# A transient failure (a busy database) is tried again after 5, 10, 20 and 40 s; five attempts in all.
RETRY = RetryPolicy(first=timedelta(seconds=5), max_attempts=5)
MAX_ATTEMPTS = RETRY.max_attempts
# How long a claimed payment is reserved for the worker that claimed it (see _claim), and how many
# payments a worker claims at once: the last of a batch waits for the others, far inside the lease.
CLAIM_LEASE = timedelta(minutes=2)
CLAIM_BATCH = 10
# Payments to post; a claim needs only their ids (processing reads each again, locked).
QUEUE = WorkQueue(
    MpesaTransaction, ready=MpesaTransaction.Status.RECEIVED, unread=("raw_body", "raw_headers")
)
# Errors worth retrying: the database was briefly unavailable, a lock wait or deadlock was broken.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


class TransientProcessingError(TemporarilyUnavailable):
    """Processing failed for a reason that retrying may fix; the payment stays ``received``."""

    def __init__(
        self, message: str, *, trans_id: str | None = None, retry_in: timedelta | None = None
    ) -> None:
        super().__init__(f"processing is briefly unavailable, try again shortly ({message})")
        self.trans_id = trans_id
        self.retry_in = retry_in


# The locking reads of every posted payment, written out (run prepared on PostgreSQL, core.db.Columns):
# compiled by the ORM, with their joins, annotations and deferred fields, they cost the worker more
# CPU than running them. tests/payments/test_processing_reads.py holds each to its ORM query.
# The payment, without its raw request (kept for people, not read here), with the two fields of
# its paybill that processing reads (hold_reason, match_payment; the others, the secrets above all,
# load on access), and whether it has allocations that were not reversed.
_PAYMENT = Columns(MpesaTransaction, "t", exclude=("raw_body", "raw_headers"))
_PAYMENT_CONFIG = Columns(MpesaConfiguration, "c", only=("id", "business_short_code", "amount_tolerance"))
# The borrower, their loan officer and the number they are texted on (Borrower.primary_phone's).
_BORROWER = Columns(Borrower, "b")
_OFFICER = Columns(User, "u")
_LOAN = Columns(Loan, "l")


@functools.cache
def _payment_lock_sql() -> str:
    return (
        f"SELECT {_PAYMENT.sql}, {_PAYMENT_CONFIG.sql}, EXISTS (SELECT 1 FROM payments_allocation a "  # noqa: S608
        "WHERE a.transaction_id = t.id AND a.reversed_at IS NULL) "
        "FROM payments_mpesatransaction t JOIN payments_mpesaconfiguration c ON c.id = t.config_id "
        f"WHERE t.trans_id = %s{for_update('t')}"
    )


@functools.cache
def _borrower_lock_sql() -> str:
    return (
        f"SELECT {_BORROWER.sql}, {_OFFICER.sql}, (SELECT p.number FROM core_borrowerphone p "  # noqa: S608
        "WHERE p.borrower_id = b.id ORDER BY p.is_primary DESC, p.id LIMIT 1) "
        "FROM core_borrower b LEFT JOIN core_user u ON u.id = b.loan_officer_id "
        f"WHERE b.id = %s{for_update('b')}"
    )


@functools.cache
def _loans_lock_sql() -> str:
    # ORDER BY id: the rows are locked in id order, as every other writer of loans locks them.
    return (
        f"SELECT {_LOAN.sql} FROM core_loan l WHERE l.borrower_id = %s AND l.status = %s "  # noqa: S608
        f"ORDER BY l.id{for_update('l')}"
    )


def _payment_locked(trans_id: str) -> tuple[MpesaTransaction, bool]:
    """The payment ``trans_id``, its row locked, and whether it has live (unreversed) allocations.
    Raises ``MpesaTransaction.DoesNotExist``."""
    rows = fetch_rows(_payment_lock_sql(), [trans_id])
    if not rows:
        raise MpesaTransaction.DoesNotExist(f"no M-Pesa transaction {trans_id}")
    tx = _PAYMENT.instance(rows[0])
    tx.config = _PAYMENT_CONFIG.instance(rows[0], _PAYMENT.width)
    return tx, bool(rows[0][-1])


def _borrower_locked(borrower_id: int) -> tuple[Borrower, str | None]:
    """The borrower, their row locked, with their loan officer; and the number they are texted on."""
    rows = fetch_rows(_borrower_lock_sql(), [borrower_id])
    if not rows:
        raise Borrower.DoesNotExist(f"no borrower {borrower_id}")
    row = rows[0]
    borrower = _BORROWER.instance(row)
    if row[_BORROWER.width] is not None:  # the officer's id: LEFT JOIN found one
        borrower.loan_officer = _OFFICER.instance(row, _BORROWER.width)
    return borrower, row[-1]


def _active_loans_locked(borrower_id: int) -> list[Loan]:
    return [_LOAN.instance(row) for row in fetch_rows(_loans_lock_sql(), [borrower_id, Loan.Status.ACTIVE])]


@dataclass(frozen=True, slots=True)
class Posted:
    allocations: list[Allocation]
    credit: Decimal
    borrower: Borrower  # locked by allocate_payment, with its loan officer
    borrower_number: str | None  # the number the borrower is texted on (None: no phone)


@dataclass(slots=True)
class _Attempt:
    """What one attempt learnt before it failed. Its transaction is rolled back, but the failure still
    names the borrower matching found (so their loan officer is alerted, and may act on the payment)
    and keeps what the matcher tried."""

    match: MatchResult | None = None


def payment_facts(source: "MpesaTransaction | C2BPayload") -> PaymentFacts:
    """What the matcher needs from a stored transaction or a freshly parsed callback."""
    plain = source.msisdn_kind == MpesaTransaction.MsisdnKind.PLAIN
    return PaymentFacts(
        amount=source.amount,
        bill_reference=source.bill_reference,
        msisdn=source.msisdn,
        msisdn_kind=source.msisdn_kind,
        msisdn_e164=try_normalize_phone(source.msisdn) if plain else None,
        first_name=source.first_name,
        middle_name=source.middle_name,
        last_name=source.last_name,
    )


def allocate_payment(
    *, tx: MpesaTransaction, borrower_id: int, first_loan_id: int | None, actor: Actor
) -> Posted:
    """Post ``tx.amount`` for a borrower: the chosen loan first, then the borrower's other active loans
    (oldest due first), then whatever is left to their credit balance. Call inside a transaction
    that holds the lock on ``tx``; takes the borrower and loan locks itself (borrower, then loans by
    id), and posts to the loans it locked (``repayment_apply``)."""
    borrower, number = _borrower_locked(borrower_id)
    locked = _active_loans_locked(borrower_id)
    ordered = sorted(locked, key=lambda loan: (loan.pk != first_loan_id, loan.due_date, loan.pk))

    remaining = tx.amount
    allocations = []
    for loan in ordered:
        if remaining <= 0:
            break
        result = repayment_apply(
            loan=loan,
            amount=remaining,
            actor=actor,
            source="mpesa",
            reference=tx.trans_id,
            posted_at=tx.trans_time,
        )
        if result.repayment is not None:
            allocations.append(
                create_row(
                    Allocation,
                    transaction=tx,
                    target=Allocation.Target.LOAN,
                    loan=result.loan,
                    borrower_id=borrower_id,
                    amount=result.applied,
                    repayment=result.repayment,
                )
            )
        remaining = result.excess
    credit = ZERO
    if remaining > 0:
        entry = borrower_credit_add(
            borrower=borrower,
            amount=remaining,
            actor=actor,
            reference=tx.trans_id,
            reason="overpayment: no active loan left to take it",
        )
        allocations.append(
            create_row(
                Allocation,
                transaction=tx,
                target=Allocation.Target.CREDIT,
                borrower_id=borrower_id,
                amount=remaining,
                credit_entry=entry,
            )
        )
        credit = remaining
    return Posted(allocations=allocations, credit=credit, borrower=borrower, borrower_number=number)


def queue_payment_news(*, tx: MpesaTransaction, posted: Posted) -> None:
    """The borrower's SMS receipt, a note to the loan officer, and an alert when money went to credit.
    Rows are written in the caller's transaction; delivery starts after it commits. Raises
    ``InvalidState`` for a payment that has no borrower (it was not posted)."""
    if tx.borrower_id is None:
        raise InvalidState(f"{tx.trans_id} has no borrower: there is no news of a payment not posted")
    borrower = posted.borrower
    lines = [
        messages.ReceiptLine(loan_number=a.loan.loan_number, outstanding_after=a.loan.outstanding)
        for a in posted.allocations
        # A check constraint gives every allocation to a loan (and only those) a loan.
        if a.target == Allocation.Target.LOAN and a.loan is not None
    ]
    round_key = f"{tx.trans_id}:{posted.allocations[0].pk if posted.allocations else 0}"
    number = posted.borrower_number
    if number is not None:
        outbox_queue(
            channel="sms",
            recipient=number,
            body=messages.receipt_text(
                language=borrower.preferred_language,
                amount=tx.amount,
                trans_id=tx.trans_id,
                loans=lines,
                credit=posted.credit,
            ),
            dedupe_key=f"receipt:{round_key}",
            borrower=borrower,
        )
    officer = borrower.loan_officer
    if officer is not None:
        outbox_queue_for_staff(
            users=[officer],
            body=messages.officer_note_text(
                borrower_name=borrower.full_name,
                amount=tx.amount,
                trans_id=tx.trans_id,
                loans=lines,
                credit=posted.credit,
                strategy=tx.match_strategy,
            ),
            dedupe_key=f"officer-note:{round_key}",
            context={"trans_id": tx.trans_id, "kind": "posted"},
        )
    if posted.credit > 0:
        outbox_queue_for_staff(
            users=staff_to_alert(officer=officer),
            body=messages.credit_alert_text(
                trans_id=tx.trans_id, borrower_name=borrower.full_name, credit=posted.credit
            ),
            dedupe_key=f"credit-alert:{round_key}",
            context={"trans_id": tx.trans_id, "kind": "credit"},
        )


def _alert_unmatched(tx: MpesaTransaction) -> None:
    outbox_queue_for_staff(
        users=staff_to_alert(),
        body=messages.unmatched_alert_text(
            trans_id=tx.trans_id, amount=tx.amount, bill_reference=tx.bill_reference, payer_name=tx.payer_name
        ),
        dedupe_key=f"unmatched:{tx.trans_id}:{tx.attempts}",
        context={"trans_id": tx.trans_id, "kind": "unmatched"},
    )


def _alert_failed(tx: MpesaTransaction) -> None:
    officer = tx.borrower.loan_officer if tx.borrower is not None else None
    outbox_queue_for_staff(
        users=staff_to_alert(officer=officer),
        body=messages.failed_alert_text(trans_id=tx.trans_id, amount=tx.amount, error=tx.last_error),
        dedupe_key=f"failed:{tx.trans_id}:{tx.attempts}",
        context={"trans_id": tx.trans_id, "kind": "failed"},
    )


def hold_reason(tx: MpesaTransaction) -> str:
    """Why ``tx`` must wait for staff rather than be posted, in words; ``""`` when nothing holds it.
    Safaricom confirms what was paid, so such a payment is kept, but money paid to another paybill,
    or more than M-Pesa can move in one payment, is for a person to look at first."""
    reasons = []
    paybill = tx.config.business_short_code
    if tx.business_short_code != paybill:
        reasons.append(f"paid to short code {tx.business_short_code}, not this paybill ({paybill})")
    if tx.amount > settings.MPESA_MAX_AMOUNT:
        reasons.append(
            f"{format_kes(tx.amount)} is more than one M-Pesa payment can be "
            f"(MPESA_MAX_AMOUNT, {format_kes(settings.MPESA_MAX_AMOUNT)})"
        )
    return "; ".join(reasons)


def _hold(tx: MpesaTransaction, reason: str, started: float) -> MpesaTransaction:
    tx.status = MpesaTransaction.Status.HELD
    tx.held_reason = reason[:300]
    tx.notes = [*tx.notes, f"held for staff, not posted: {reason}"]
    tx.last_error = ""
    tx.processed_at = timezone.now()
    tx.processing_ms = _elapsed_ms(started)
    tx.save(
        update_fields=[
            "status",
            "attempts",
            "held_reason",
            "notes",
            "last_error",
            "processed_at",
            "processing_ms",
        ]
    )
    outbox_queue_for_staff(
        users=staff_to_alert(),
        body=messages.held_alert_text(trans_id=tx.trans_id, amount=tx.amount, reason=reason),
        dedupe_key=f"held:{tx.trans_id}:{tx.attempts}",
        context={"kind": "held", "trans_id": tx.trans_id},
    )
    logger.warning("mpesa %s held for staff: %s", tx.trans_id, reason)
    return tx


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)


def _process(
    tx: MpesaTransaction, started: float, *, counted: bool, posted_before: bool, attempt: _Attempt
) -> MpesaTransaction:
    """Match and post ``tx``, whose row the caller has locked. ``counted``: the queue's claim already
    counted this attempt; ``posted_before``: ``tx`` has allocations that were not reversed;
    ``attempt`` receives the match, for a failure after it."""
    if tx.status != MpesaTransaction.Status.RECEIVED:
        return tx  # already settled: a duplicate delivery, a second worker, a staff action
    if posted_before:
        # Never post a payment twice, whatever state its row claims to be in.
        raise InvalidState(f"{tx.trans_id} already has allocations; it is not posted again")
    if not counted:
        tx.attempts += 1
    held = hold_reason(tx)
    if held:
        return _hold(tx, held, started)
    result = match_payment(payment_facts(tx), DatabaseDirectory(), tx.config.amount_tolerance)
    attempt.match = result
    tx.notes = [*tx.notes, *result.notes]  # earlier attempts stay on the record
    tx.identified_by = result.identified_by
    tx.last_error = ""
    tx.processed_at = timezone.now()
    fields = ["status", "attempts", "notes", "identified_by", "match_strategy", "borrower", "payer_borrower"]
    fields += ["last_error", "processed_at", "processing_ms"]
    if result.borrower_id is None:  # not matched (MatchResult.matched), spelt so mypy narrows it
        tx.status = MpesaTransaction.Status.UNMATCHED
        tx.match_strategy, tx.borrower_id, tx.payer_borrower_id = "", None, None
        tx.processing_ms = _elapsed_ms(started)
        save_fields(tx, fields)
        processing_observe(tx)
        _alert_unmatched(tx)
        logger.info("mpesa %s unmatched (%.1f ms)", tx.trans_id, tx.processing_ms)
        return tx
    tx.borrower_id = result.borrower_id
    tx.payer_borrower_id = result.payer_borrower_id
    tx.match_strategy = result.match_strategy
    posted = allocate_payment(
        tx=tx,
        borrower_id=result.borrower_id,
        first_loan_id=result.loan.id if result.loan else None,
        actor=ENGINE,
    )
    tx.status = MpesaTransaction.Status.PROCESSED
    tx.processing_ms = _elapsed_ms(started)
    save_fields(tx, fields)
    processing_observe(tx)
    queue_payment_news(tx=tx, posted=posted)
    logger.info(
        "mpesa %s processed: borrower %s, %s via %s, %s allocation(s) (%.1f ms)",
        tx.trans_id,
        tx.borrower_id,
        tx.identified_by,
        tx.match_strategy,
        len(posted.allocations),
        tx.processing_ms,
    )
    return tx


def _record_failure(
    *, trans_id: str, error: str, transient: bool, counted: bool, attempt: _Attempt | None = None
) -> MpesaTransaction:
    with transaction.atomic():
        tx = (
            MpesaTransaction.objects.select_for_update(of=("self",))
            .select_related("borrower")
            .get(trans_id=trans_id)
        )
        if tx.status != MpesaTransaction.Status.RECEIVED:
            # Between the rollback and this lock another worker (or staff) settled the payment:
            # its outcome stands.
            return tx
        if not counted:
            tx.attempts += 1
        tx.last_error = error[:4000]
        gives_up = not transient or RETRY.exhausted(tx.attempts)
        tx.status = MpesaTransaction.Status.FAILED if gives_up else MpesaTransaction.Status.RECEIVED
        tx.next_attempt_at = timezone.now() + RETRY.delay(tx.attempts)
        fields = ["attempts", "last_error", "status", "next_attempt_at", "notes"]
        tried = attempt.match if attempt is not None and gives_up else None
        if tried is not None and tried.borrower_id is not None:
            tx.borrower_id = tried.borrower_id
            fields.append("borrower")
        tx.notes = [
            *tx.notes,
            *(tried.notes if tried else []),
            f"attempt {tx.attempts} failed: {error[:300]}",
        ]
        save_fields(tx, fields)
        if gives_up:
            _alert_failed(tx)
    return tx


def _run(trans_id: str, *, counted: bool) -> MpesaTransaction:
    """Process one payment in one transaction (row locked); record a failure in another."""
    started = time.monotonic()
    attempt = _Attempt()
    try:
        with transaction.atomic():
            locked, posted_before = _payment_locked(trans_id)
            return _process(locked, started, counted=counted, posted_before=posted_before, attempt=attempt)
    except MpesaTransaction.DoesNotExist:
        raise
    except TRANSIENT_ERRORS as exc:
        tx = _record_failure(
            trans_id=trans_id,
            error=f"{type(exc).__name__}: {exc}",
            transient=True,
            counted=counted,
            attempt=attempt,
        )
        logger.warning(
            "mpesa %s transient failure (attempt %s): %s", trans_id, tx.attempts, type(exc).__name__
        )
        if tx.status != MpesaTransaction.Status.RECEIVED:
            return tx
        raise TransientProcessingError(
            str(exc), trans_id=trans_id, retry_in=RETRY.delay(tx.attempts)
        ) from exc
    except Exception as exc:
        # Anything else is a defect or a data problem: keep the payment, say what went wrong, alert.
        logger.exception("mpesa %s failed to process", trans_id)
        return _record_failure(
            trans_id=trans_id,
            error=f"{type(exc).__name__}: {exc}",
            transient=False,
            counted=counted,
            attempt=attempt,
        )


def transaction_process(*, trans_id: str) -> MpesaTransaction:
    """Match and post the stored payment ``trans_id`` now; return it with its new status.

    ``processed``: posted and allocated; ``unmatched``: nobody identified, staff alerted; ``held``: paid
    to another short code or over ``MPESA_MAX_AMOUNT``, kept for staff, not posted, staff alerted. A payment
    that is not ``received`` is returned untouched. On a transient database error the payment
    stays ``received`` with a later ``next_attempt_at`` (the queue tries again, up to
    ``MAX_ATTEMPTS``) and ``TransientProcessingError`` is raised; any other error marks it ``failed``
    with the error and alerts staff (the loan officer too, and the payment keeps the borrower, when
    matching found one before the error). Raises ``MpesaTransaction.DoesNotExist`` for an unknown ``trans_id``.
    """
    return _run(trans_id, counted=False)


def _claim(limit: int) -> list[str]:
    """Take the oldest due received payments (up to ``limit``) no other worker holds: count the
    attempt and lease them for ``CLAIM_LEASE``, committed before any processing. A worker that dies
    while processing has therefore used an attempt, and its payments come back when the lease ends; a
    payment that keeps killing workers is marked failed after ``MAX_ATTEMPTS`` instead of blocking the
    queue (it is returned too, and processing it changes nothing)."""
    claimed = claim_batch(QUEUE, lease=CLAIM_LEASE, limit=limit, retry=RETRY, give_up=_give_up)
    return [tx.trans_id for tx in claimed]


def _give_up(tx: MpesaTransaction) -> None:
    tx.status = MpesaTransaction.Status.FAILED
    tx.last_error = tx.last_error or "processing stopped part-way every time (the worker died)"
    tx.notes = [*tx.notes, f"given up after {tx.attempts} attempts"]
    tx.save(update_fields=["status", "last_error", "notes"])
    _alert_failed(tx)


def transaction_process_next() -> MpesaTransaction | None:
    """Claim the oldest due ``received`` payment that no other worker holds, and process it.

    ``SKIP LOCKED`` lets any number of workers drain the queue side by side without waiting on
    each other. Returns the payment, or ``None`` when nothing is due. Raises
    ``TransientProcessingError`` as ``transaction_process`` does.
    """
    try:
        claimed = _claim(1)
    except TRANSIENT_ERRORS as exc:
        raise TransientProcessingError(str(exc)) from exc
    return _run(claimed[0], counted=True) if claimed else None


def transaction_process_batch(limit: int = CLAIM_BATCH) -> tuple[list[MpesaTransaction], float | None]:
    """Claim up to ``limit`` due ``received`` payments at once and process them one by one, each in
    its own transaction, as ``transaction_process_next`` does for one: one claim instead of one per
    payment. Returns the payments processed and, when some failed transiently (they wait for their
    backoff, the rest are still processed), the seconds until the first of them is due again. Raises
    ``TransientProcessingError`` (with no ``trans_id``) when the queue itself cannot be read."""
    try:
        claimed = _claim(limit)
    except TRANSIENT_ERRORS as exc:
        raise TransientProcessingError(str(exc)) from exc
    done: list[MpesaTransaction] = []
    retry_in: float | None = None
    for trans_id in claimed:
        try:
            done.append(_run(trans_id, counted=True))
        except TransientProcessingError as exc:
            wait = exc.retry_in.total_seconds() if exc.retry_in else RETRY.first.total_seconds()
            retry_in = wait if retry_in is None else min(retry_in, wait)
    return done, retry_in
