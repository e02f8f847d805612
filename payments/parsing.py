"""Parse a Daraja C2B callback body into typed facts. Pure: no database, no settings.

The amount is read straight into ``Decimal`` (JSON numbers included, never through ``float``),
``TransTime`` becomes an aware datetime in Nairobi time, and the MSISDN is classified as a SHA-256
digest, a masked number or a plain number, because Daraja sends all three.
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core.dates import NAIROBI
from core.exceptions import InvalidAmount, InvalidInput
from core.money import to_money
from core.phones import try_normalize_phone
from payments.codes import is_trans_id

_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
_TRANS_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$", re.ASCII)
_REFERENCE_NOISE = re.compile(r"[\s\-_./#:]+")


class MalformedCallback(InvalidInput):
    """The callback body is not a C2B payload we can read."""


@dataclass(frozen=True, slots=True)
class C2BPayload:
    trans_id: str
    transaction_type: str
    trans_time: datetime
    amount: Decimal
    business_short_code: str
    bill_reference: str
    invoice_number: str
    org_account_balance: Decimal | None
    third_party_trans_id: str
    msisdn: str
    msisdn_kind: str  # hashed / masked / plain / missing
    msisdn_e164: str | None  # only for a plain MSISDN
    first_name: str
    middle_name: str
    last_name: str


def classify_msisdn(raw: str) -> tuple[str, str | None]:
    """``(kind, e164)``: ``hashed`` (a SHA-256 hex digest), ``masked`` (has ``*``), ``plain`` (digits; with
    its E.164 form when it is a Kenyan mobile, else ``None``), or ``missing``."""
    text = (raw or "").strip()
    if not text:
        return "missing", None
    if _HEX_DIGEST.match(text):
        return "hashed", None
    if "*" in text:
        return "masked", None
    if "*" not in text and text.lstrip("+").replace(" ", "").isdigit():
        return "plain", try_normalize_phone(text)
    return "masked", None


BILL_REFERENCE_MAX = 64


def normalize_bill_reference(raw: str) -> str:
    """Upper case, with spaces, dashes and similar separators removed: ``"loan 123"`` -> ``"LOAN123"``.
    At most ``BILL_REFERENCE_MAX`` characters, as the reference itself: upper case can be longer
    than the text it comes from (``"ß"`` -> ``"SS"``)."""
    return _REFERENCE_NOISE.sub("", (raw or "").upper())[:BILL_REFERENCE_MAX]


def parse_trans_time(raw: str) -> datetime:
    """``YYYYMMDDHHmmss`` (exactly 14 digits) in Nairobi time -> aware datetime. Raises
    ``MalformedCallback``. Stricter than ``strptime``, which takes one-digit fields, and a tenth of
    its cost on every confirmation."""
    match = _TRANS_TIME.match(str(raw).strip())
    try:
        if match is None:
            raise ValueError
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=NAIROBI)
    except ValueError:
        raise MalformedCallback(f"TransTime {raw!r} is not YYYYMMDDHHmmss") from None


def _text(payload: dict, key: str, limit: int = 100) -> str:
    value = payload.get(key)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise MalformedCallback(f"{key} must be text")
    text = str(value)
    if not text.isascii():
        # JSON escapes can spell what no database text holds: a lone surrogate becomes "?".
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text.replace("\x00", "").strip()[:limit]


def parse_c2b_body(body: bytes | str) -> C2BPayload:
    """Parse a validation or confirmation body. Raises ``MalformedCallback`` saying what is wrong."""
    try:
        payload = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedCallback(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedCallback("body is not a JSON object")

    trans_id = _text(payload, "TransID", 64)
    if not trans_id:
        raise MalformedCallback("TransID is missing")
    if not is_trans_id(trans_id):
        raise MalformedCallback(f"TransID {trans_id!r} is not an M-Pesa receipt number")
    raw_amount = payload.get("TransAmount")
    if raw_amount is None or raw_amount == "":
        raise MalformedCallback("TransAmount is missing")
    try:
        amount = to_money(raw_amount)
    except InvalidAmount as exc:
        raise MalformedCallback(f"TransAmount: {exc.detail}") from None
    short_code = _text(payload, "BusinessShortCode", 12)
    if not short_code:
        raise MalformedCallback("BusinessShortCode is missing")
    if "TransTime" not in payload:
        raise MalformedCallback("TransTime is missing")
    balance_raw = payload.get("OrgAccountBalance")
    try:
        balance = to_money(balance_raw) if balance_raw not in (None, "") else None
    except InvalidAmount:
        balance = None  # informational only; never a reason to lose a payment
    msisdn = _text(payload, "MSISDN", 80)
    kind, e164 = classify_msisdn(msisdn)
    return C2BPayload(
        trans_id=trans_id.upper(),
        transaction_type=_text(payload, "TransactionType", 32),
        trans_time=parse_trans_time(payload["TransTime"]),
        amount=amount,
        business_short_code=short_code,
        bill_reference=_text(payload, "BillRefNumber", BILL_REFERENCE_MAX),
        invoice_number=_text(payload, "InvoiceNumber", 64),
        org_account_balance=balance,
        third_party_trans_id=_text(payload, "ThirdPartyTransID", 64),
        msisdn=msisdn,
        msisdn_kind=kind,
        msisdn_e164=e164,
        first_name=_text(payload, "FirstName"),
        middle_name=_text(payload, "MiddleName"),
        last_name=_text(payload, "LastName"),
    )


def recovered_payload(
    *,
    trans_id: str,
    trans_time: datetime,
    amount: Decimal,
    business_short_code: str,
    bill_reference: str = "",
    msisdn: str = "",
    names: str = "",
    org_account_balance: Decimal | None = None,
    transaction_type: str = "Pay Bill",
) -> C2BPayload:
    """The ``C2BPayload`` of a payment learnt another way than its confirmation (Pull Transactions, a
    statement, a Transaction Status result), held to the same rules as a confirmation so it becomes
    the same row. ``names`` is the payer's name as one text (``"JANE W DOE"``). Raises
    ``MalformedCallback`` for a receipt number, time or amount a confirmation could not carry."""
    trans_id = (trans_id or "").strip().upper()
    if not is_trans_id(trans_id):
        raise MalformedCallback(f"{trans_id!r} is not an M-Pesa receipt number")
    if trans_time.tzinfo is None:
        raise MalformedCallback("the payment time has no time zone")
    try:
        # The column's bounds, checked here: a statement import stores a batch in one transaction,
        # which a value the database refuses would abort.
        amount = to_money(amount)
    except InvalidAmount as exc:
        raise MalformedCallback(exc.detail) from None
    try:
        balance = to_money(org_account_balance) if org_account_balance is not None else None
    except InvalidAmount:
        balance = None  # informational only; never a reason to lose a payment
    if amount <= 0:
        raise MalformedCallback(f"amount {amount} must be more than zero")
    msisdn = (msisdn or "").strip()[:80]
    kind, e164 = classify_msisdn(msisdn)
    first, _, rest = " ".join(names.split()).partition(" ")
    middle, _, last = rest.rpartition(" ")
    return C2BPayload(
        trans_id=trans_id,
        transaction_type=transaction_type[:32],
        trans_time=trans_time.astimezone(NAIROBI),
        amount=amount,
        business_short_code=business_short_code,
        bill_reference=(bill_reference or "").strip()[:BILL_REFERENCE_MAX],
        invoice_number="",
        org_account_balance=balance,
        third_party_trans_id="",
        msisdn=msisdn,
        msisdn_kind=kind,
        msisdn_e164=e164,
        first_name=first[:100],
        middle_name=middle[:100],
        last_name=last[:100],
    )
