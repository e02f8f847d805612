"""``DarajaClient``: one Daraja app at one base URL, with its shared access token."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.cache import cache

from core.phones import mask_phone
from payments.clients.daraja.errors import (
    PULL_NO_TRANSACTIONS,
    PULL_OK,
    DarajaError,
    _code,
    _error_for,
    _is_invalid_token,
    _is_product_mismatch,
    _json,
    _message,
    _require_accepted,
)
from payments.clients.daraja.inputs import (
    API_VERSIONS,
    COMMAND_IDS,
    MSISDN_FORMATS,
    RESPONSE_TYPES,
    _check_msisdn,
    _check_short_code,
    _nairobi_text,
    _whole_shillings,
)
from payments.clients.daraja.urls import callback_url_problem
from payments.codes import is_trans_id

# The package's name, as before the split, so log configuration and output keep naming it.
logger = logging.getLogger("payments.clients.daraja")

DEFAULT_SANDBOX_URL = "https://sandbox.safaricom.co.ke"
DEFAULT_PRODUCTION_URL = "https://api.safaricom.co.ke"
DEFAULT_TIMEOUT = 10.0
# The emulator calls the validation and confirmation URLs (up to ~8 s each) before it answers a simulation.
EMULATOR_MIN_TIMEOUT = 20.0

LOCAL, SANDBOX, PRODUCTION = "local", "sandbox", "production"


@dataclass(frozen=True, slots=True)
class RegisterResult:
    api_version: str  # the version Daraja accepted (v1 after a v2 product mismatch)
    answer: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PullPage:
    response_code: str
    description: str
    transactions: list[dict[str, Any]] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def nothing_returned(self) -> bool:
        """Daraja's 1001: no transactions in the window, or Pull Transactions is not provisioned."""
        return self.response_code == PULL_NO_TRANSACTIONS


def _environment_for(base_url: str) -> str:
    host = urlsplit(base_url).hostname
    if host == urlsplit(getattr(settings, "MPESA_PRODUCTION_URL", DEFAULT_PRODUCTION_URL)).hostname:
        return PRODUCTION
    if host == urlsplit(getattr(settings, "MPESA_SANDBOX_URL", DEFAULT_SANDBOX_URL)).hostname:
        return SANDBOX
    return LOCAL


def _token_ttl(expires_in: int) -> int:
    # Refresh about five minutes early so a token never expires between reading it and using it.
    return expires_in - 300 if expires_in > 600 else max(expires_in // 2, 1)


def _flatten_rows(rows: object) -> list[dict[str, Any]]:
    # Daraja has been seen answering both [{...}] and [[{...}]].
    if not isinstance(rows, list):
        return []
    flat: list[dict[str, Any]] = []
    for row in rows:
        if isinstance(row, list):
            flat.extend(item for item in row if isinstance(item, dict))
        elif isinstance(row, dict):
            flat.append(row)
    return flat


class DarajaClient:
    """One Daraja app (consumer key and secret) at one base URL.

    Every method returns Daraja's JSON answer (or a small result object) and raises ``DarajaError``,
    and nothing else, for any failure, including inputs refused before any HTTP request is made.
    Use it as a context manager (or call ``close``) to release its connection pool.
    """

    def __init__(
        self,
        base_url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
        environment: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._consumer_key = consumer_key
        self._consumer_secret = consumer_secret
        self.timeout = float(timeout)
        self.environment = environment or _environment_for(self.base_url)
        self._transport = transport
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"<DarajaClient {self.environment} {self.base_url}>"

    @classmethod
    def for_config(cls, config: Any, *, transport: httpx.BaseTransport | None = None) -> DarajaClient:
        """The client for an ``MpesaConfiguration``: its environment picks the base URL (``local`` is the
        emulator at ``MPESA_EMULATOR_URL``, by default served by this system at the configuration's own
        base URL), its decrypted credentials are read now, not at import."""
        timeout = float(getattr(settings, "MPESA_HTTP_TIMEOUT", DEFAULT_TIMEOUT))
        environment = config.environment
        if environment == LOCAL:
            # The emulator is part of this project, so it lives where the callbacks do unless told otherwise.
            base_url = (
                getattr(settings, "MPESA_EMULATOR_URL", "")
                or f"{config.base_url.rstrip('/')}/daraja-emulator"
            )
            timeout = max(timeout, EMULATOR_MIN_TIMEOUT)
        elif environment == SANDBOX:
            base_url = getattr(settings, "MPESA_SANDBOX_URL", DEFAULT_SANDBOX_URL)
        elif environment == PRODUCTION:
            base_url = getattr(settings, "MPESA_PRODUCTION_URL", DEFAULT_PRODUCTION_URL)
        else:
            raise DarajaError(f"unknown M-Pesa environment {environment!r}", permanent=True)
        return cls(
            base_url,
            config.consumer_key,
            config.consumer_secret,
            timeout=timeout,
            transport=transport,
            environment=environment,
        )

    # --- HTTP -----------------------------------------------------------------------------------

    def __enter__(self) -> DarajaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                base_url=self.base_url,
                timeout=self.timeout,
                transport=self._transport,
                headers={"Accept": "application/json"},
            )
        return self._http

    def _send(
        self, method: str, path: str, *, operation: str, **kwargs: Any
    ) -> tuple[httpx.Response, dict[str, Any] | None]:
        started = time.monotonic()
        try:
            response = self._client().request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            logger.warning("daraja %s: no answer within %.0f s", operation, self.timeout)
            raise DarajaError(
                f"Daraja did not answer {operation} within {self.timeout:g} s",
                permanent=False,
                unreachable=True,
            ) from exc
        except httpx.TransportError as exc:
            logger.warning("daraja %s: %s reaching %s", operation, type(exc).__name__, self.base_url)
            if self.environment == LOCAL:
                detail = (
                    f"nothing answers at {self.base_url} ({type(exc).__name__}): the Daraja emulator runs "
                    "inside this project's web server; start it (make run, or manage.py runserver) and try again"
                )
            else:
                detail = f"could not reach Daraja at {self.base_url} for {operation} ({type(exc).__name__})"
            raise DarajaError(detail, permanent=False, unreachable=True) from exc
        data = _json(response)
        logger.info(
            "daraja %s: HTTP %s code=%s in %d ms",
            operation,
            response.status_code,
            _code(data) or "-",
            (time.monotonic() - started) * 1000,
        )
        return response, data

    def _post(self, path: str, body: dict[str, Any], *, operation: str) -> dict[str, Any]:
        token = self.access_token()
        response, data = self._send(
            "POST", path, operation=operation, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        if _is_invalid_token(response, data):
            # Not a retry under core.retry.RetryPolicy, on purpose: a refused token is not a transient
            # failure to back off from but a stale credential (another process fetched a newer one, which
            # invalidated ours). One refresh fixes it at once, and Daraja did nothing with the refused
            # call, so repeating it is safe even for a one-off operation. A fresh token refused as well
            # is a DarajaError (not permanent): whoever called decides when to try again (beat's next
            # pull, the admin's next click), as for any other transient Daraja error.
            logger.info("daraja %s: access token refused; fetching a new one and retrying once", operation)
            self._discard_token(token)
            token = self.access_token()
            response, data = self._send(
                "POST", path, operation=operation, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            if _is_invalid_token(response, data):
                raise DarajaError(
                    f"Daraja refused a freshly issued access token for {operation}: another system may be "
                    "fetching tokens with the same consumer key",
                    permanent=False,
                    code=_code(data),
                    http_status=response.status_code,
                )
        if not response.is_success:
            raise _error_for(response, data, operation)
        if data is None:
            raise DarajaError(
                f"Daraja's answer to {operation} is not a JSON object",
                permanent=False,
                http_status=response.status_code,
            )
        return data

    # --- OAuth ----------------------------------------------------------------------------------

    @property
    def _token_cache_key(self) -> str:
        # Hashed: the consumer key must not appear in clear in Redis.
        digest = hashlib.sha256(f"{self.base_url}\n{self._consumer_key}".encode()).hexdigest()
        return f"daraja:token:{digest[:40]}"

    def access_token(self, *, force: bool = False) -> str:
        """A valid access token: the one shared in the cache, or a new one if there is none (or ``force``).

        Fetching invalidates the previous token at Daraja, so only one process fetches at a time (a
        cache lock); the others wait for its token. Raises ``DarajaError``.
        """
        key, lock_key = self._token_cache_key, self._token_cache_key + ":lock"
        if force:
            cache.delete(key)
        deadline = time.monotonic() + self.timeout + 2
        while True:
            token = cache.get(key)
            if token:
                return token
            if cache.add(lock_key, "1", timeout=int(self.timeout) + 5):
                try:
                    token = cache.get(key)  # another process may have stored one between the two reads
                    if token:
                        return token
                    token, expires_in = self._fetch_token()
                    cache.set(key, token, timeout=_token_ttl(expires_in))
                    return token
                finally:
                    cache.delete(lock_key)
            if time.monotonic() > deadline:
                raise DarajaError(
                    "timed out waiting for another process to fetch the Daraja access token", permanent=False
                )
            time.sleep(0.1)

    def _discard_token(self, token: str) -> None:
        # Only if it is still the cached one: another process may already have stored a newer token.
        key = self._token_cache_key
        if cache.get(key) == token:
            cache.delete(key)

    def _fetch_token(self) -> tuple[str, int]:
        if not self._consumer_key or not self._consumer_secret:
            raise DarajaError("the M-Pesa configuration has no consumer key or secret", permanent=True)
        response, data = self._send(
            "GET",
            "/oauth/v1/generate",
            operation="OAuth",
            params={"grant_type": "client_credentials"},
            auth=(self._consumer_key, self._consumer_secret),
        )
        if response.is_success:
            if not data or not data.get("access_token"):
                raise DarajaError(
                    "Daraja's OAuth answer has no access_token",
                    permanent=False,
                    http_status=response.status_code,
                )
            try:
                expires_in = int(data.get("expires_in") or 3599)
            except (TypeError, ValueError):
                expires_in = 3599
            return str(data["access_token"]), expires_in
        if self.environment == LOCAL and response.status_code == 404 and data is None:
            raise DarajaError(
                f"no Daraja emulator at {self.base_url}: check MPESA_EMULATOR_URL, and that the server runs "
                "with MPESA_EMULATOR_ENABLED (default: DEBUG)",
                permanent=True,
                http_status=404,
            )
        if response.status_code in (400, 401, 403):
            code = _code(data)
            raise DarajaError(
                f"Daraja refused the consumer key and secret (HTTP {response.status_code}, "
                f"{code or 'no code'}: {_message(data) or 'no description'}); check them against the app "
                "in the Daraja portal and the environment (sandbox or production)",
                permanent=True,
                code=code,
                http_status=response.status_code,
            )
        raise _error_for(response, data, "OAuth")

    # --- C2B ------------------------------------------------------------------------------------

    def check_callback_url(self, label: str, url: str) -> None:
        """Refuse (``DarajaError``, permanent) a URL Daraja would refuse, before any request is made."""
        problem = callback_url_problem(url, production=self.environment == PRODUCTION)
        if problem:
            raise DarajaError(f"{label} refused before calling Daraja: {problem}", permanent=True)

    def register_urls(
        self,
        short_code: str,
        response_type: str,
        confirmation_url: str,
        validation_url: str,
        version: str = "v2",
    ) -> RegisterResult:
        """Register the C2B confirmation and validation URLs of ``short_code``.

        Returns the version Daraja accepted and its answer: on ``401.003.01`` (the app is not subscribed
        to v2) it tries v1 once. Raises ``DarajaError``; permanent for refused inputs (checked before any
        request) and for ``500.003.1001`` (production URLs are already registered).
        """
        if response_type not in RESPONSE_TYPES:
            raise DarajaError(
                f"ResponseType must be exactly 'Completed' or 'Cancelled', not {response_type!r}",
                permanent=True,
            )
        if version not in API_VERSIONS:
            raise DarajaError(f"API version must be v1 or v2, not {version!r}", permanent=True)
        short_code = _check_short_code(short_code)
        self.check_callback_url("ConfirmationURL", confirmation_url)
        self.check_callback_url("ValidationURL", validation_url)
        body = {
            "ShortCode": short_code,
            "ResponseType": response_type,
            "ConfirmationURL": confirmation_url,
            "ValidationURL": validation_url,
        }
        try:
            answer = self._post(
                f"/mpesa/c2b/{version}/registerurl", body, operation=f"C2B register URL {version}"
            )
        except DarajaError as exc:
            if version == "v1" or not _is_product_mismatch(exc.code, exc.detail):
                raise
            logger.info(
                "daraja register URL for %s: app not subscribed to %s, trying v1", short_code, version
            )
            version = "v1"
            answer = self._post("/mpesa/c2b/v1/registerurl", body, operation="C2B register URL v1")
        _require_accepted(answer, f"C2B register URL {version}")
        logger.info("daraja register URL for %s: accepted (%s, %s)", short_code, version, response_type)
        return RegisterResult(api_version=version, answer=answer)

    def simulate(
        self,
        short_code: str,
        amount: int | Decimal | str,
        msisdn: str,
        bill_reference: str,
        command_id: str = "CustomerPayBillOnline",
        *,
        msisdn_format: str | None = None,
        deliver_callbacks: bool = True,
    ) -> dict[str, Any]:
        """Simulate a customer paying ``amount`` (whole shillings) from ``msisdn`` (``2547XXXXXXXX``).

        Sandbox and emulator only: refused before any request in production. ``msisdn_format``
        (hashed, masked, plain) tells the local emulator how to write the MSISDN in its callbacks, and
        ``deliver_callbacks=False`` asks it to lose them (the payment stays in its ledger); neither is
        sent to Safaricom, and the sandbox refuses a lost callback. Returns Daraja's answer (the emulator adds ``TransID``). Raises
        ``DarajaError``.
        """
        if self.environment == PRODUCTION:
            raise DarajaError("C2B simulation does not exist in production", permanent=True)
        if command_id not in COMMAND_IDS:
            raise DarajaError(f"CommandID must be one of {', '.join(COMMAND_IDS)}", permanent=True)
        if msisdn_format is not None and msisdn_format not in MSISDN_FORMATS:
            raise DarajaError(f"MSISDN format must be one of {', '.join(MSISDN_FORMATS)}", permanent=True)
        short_code = _check_short_code(short_code)
        whole_amount = _whole_shillings(amount)
        msisdn = _check_msisdn(msisdn)
        body: dict[str, Any] = {
            "ShortCode": int(short_code),
            "CommandID": command_id,
            "Amount": whole_amount,
            "Msisdn": int(msisdn),
            "BillRefNumber": bill_reference or "",
        }
        if msisdn_format and self.environment == LOCAL:
            body["MsisdnFormat"] = msisdn_format
        if not deliver_callbacks:
            if self.environment != LOCAL:
                raise DarajaError("only the local emulator can lose a payment's callbacks", permanent=True)
            body["DeliverCallbacks"] = False
        answer = self._post("/mpesa/c2b/v1/simulate", body, operation="C2B simulate")
        _require_accepted(answer, "C2B simulate")
        logger.info(
            "daraja simulate %s KES %s from %s: accepted%s",
            short_code,
            whole_amount,
            mask_phone(msisdn),
            f" TransID={answer['TransID']}" if answer.get("TransID") else "",
        )
        return answer

    # --- Recovery -------------------------------------------------------------------------------

    def transaction_status(
        self,
        *,
        transaction_id: str,
        short_code: str,
        initiator: str,
        security_credential: str,
        result_url: str,
        queue_timeout_url: str,
        identifier_type: str = "4",
        remarks: str = "Payment status check",
        occasion: str = "",
    ) -> dict[str, Any]:
        """Ask for the status of M-Pesa receipt ``transaction_id``; the result arrives later at ``result_url``.

        Returns Daraja's acknowledgement (``ConversationID``, ``OriginatorConversationID``). Raises
        ``DarajaError``.
        """
        if not is_trans_id(transaction_id or ""):
            raise DarajaError(f"{transaction_id!r} is not an M-Pesa receipt number", permanent=True)
        if not initiator or not security_credential:
            raise DarajaError(
                "Transaction Status needs an initiator and its security credential", permanent=True
            )
        short_code = _check_short_code(short_code)
        self.check_callback_url("ResultURL", result_url)
        self.check_callback_url("QueueTimeOutURL", queue_timeout_url)
        body = {
            "Initiator": initiator,
            "SecurityCredential": security_credential,
            "CommandID": "TransactionStatusQuery",
            "TransactionID": transaction_id,
            "PartyA": short_code,
            "IdentifierType": identifier_type,
            "ResultURL": result_url,
            "QueueTimeOutURL": queue_timeout_url,
            "Remarks": remarks or "Payment status check",
            "Occasion": occasion,
        }
        answer = self._post("/mpesa/transactionstatus/v1/query", body, operation="transaction status")
        _require_accepted(answer, "transaction status")
        return answer

    def pull_transactions_register(
        self, *, short_code: str, nominated_number: str, callback_url: str, request_type: str = "Pull"
    ) -> dict[str, Any]:
        """Register ``short_code`` for Pull Transactions (once per short code).

        Returns Daraja's answer (``ResponseStatus`` 1000). Raises ``DarajaError``.
        """
        short_code = _check_short_code(short_code)
        nominated = _check_msisdn(nominated_number)
        self.check_callback_url("CallBackURL", callback_url)
        body = {
            "ShortCode": short_code,
            "RequestType": request_type,
            "NominatedNumber": nominated,
            "CallBackURL": callback_url,
        }
        answer = self._post("/pulltransactions/v1/register", body, operation="pull transactions register")
        _require_accepted(answer, "pull transactions register", ok=(PULL_OK,))
        return answer

    def pull_transactions_query(
        self, *, short_code: str, start: datetime, end: datetime, offset: int = 0
    ) -> PullPage:
        """One page of C2B transactions received between ``start`` and ``end`` (aware; at most 48 hours back).

        Returns a ``PullPage``; code 1001 is not an error (``nothing_returned``: either no transactions
        or Pull Transactions not provisioned, which Daraja does not tell apart). Raises ``DarajaError``.
        """
        short_code = _check_short_code(short_code)
        start_text, end_text = _nairobi_text(start, "start"), _nairobi_text(end, "end")
        if end <= start:
            raise DarajaError("the end of a pull window must come after its start", permanent=True)
        if offset < 0:
            raise DarajaError("the pull offset cannot be negative", permanent=True)
        body = {
            "ShortCode": short_code,
            "StartDate": start_text,
            "EndDate": end_text,
            "OffSetValue": str(offset),
        }
        answer = self._post("/pulltransactions/v1/query", body, operation="pull transactions query")
        code = _code(answer) or ""
        if code not in (PULL_OK, PULL_NO_TRANSACTIONS):
            _require_accepted(answer, "pull transactions query", ok=(PULL_OK,))
        rows = _flatten_rows(answer.get("Response")) if code == PULL_OK else []
        logger.info("daraja pull %s offset %s: code %s, %d rows", short_code, offset, code, len(rows))
        return PullPage(response_code=code, description=_message(answer), transactions=rows, answer=answer)
