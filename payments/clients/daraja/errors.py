"""``DarajaError``, Daraja's answer codes, and how an answer is read and turned into an error."""

from __future__ import annotations

from typing import Any

import httpx

from core.exceptions import ExternalServiceError

INVALID_TOKEN = "404.001.03"  # noqa: S105 - an error code, not a secret
PRODUCT_MISMATCH = "401.003.01"
ALREADY_REGISTERED = "500.003.1001"
SPIKE_ARREST = "500.003.02"
PULL_OK = "1000"
# Pull Transactions answers 1001 both for "no transactions" and for "not provisioned".
PULL_NO_TRANSACTIONS = "1001"


class DarajaError(ExternalServiceError):
    """Daraja refused, failed or could not be reached.

    ``permanent``: retrying the same call cannot help. ``code``: Daraja's ``errorCode`` / ``ResponseCode``
    when it gave one. ``http_status``: the HTTP status, if an answer arrived. ``unreachable``: no answer
    at all (connection refused, DNS failure, timeout).
    """

    def __init__(
        self,
        detail: str = "",
        *,
        permanent: bool,
        code: str | None = None,
        http_status: int | None = None,
        unreachable: bool = False,
        **context: object,
    ) -> None:
        super().__init__(detail, permanent=permanent, **context)
        self.code = code
        self.http_status = http_status
        self.unreachable = unreachable


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _code(data: dict[str, Any] | None) -> str | None:
    if not data:
        return None
    for key in ("errorCode", "ResponseCode", "ResponseStatus", "ResultCode"):
        if data.get(key) not in (None, ""):
            return str(data[key]).strip()
    return None


def _message(data: dict[str, Any] | None) -> str:
    if not data:
        return ""
    for key in ("errorMessage", "ResponseDescription", "ResponseMessage", "ResultDesc"):
        if data.get(key):
            return str(data[key]).strip()
    return ""


def _is_product_mismatch(code: str | None, message: str) -> bool:
    return code == PRODUCT_MISMATCH or "no apiproduct match" in message.lower()


def _is_invalid_token(response: httpx.Response, data: dict[str, Any] | None) -> bool:
    code = _code(data)
    if code == INVALID_TOKEN:
        return True
    # Daraja also answers 401 for an app not subscribed to the product: that is not a token problem.
    return response.status_code == 401 and not _is_product_mismatch(code, _message(data))


def _error_for(response: httpx.Response, data: dict[str, Any] | None, operation: str) -> DarajaError:
    status = response.status_code
    code = _code(data)
    message = _message(data) or response.reason_phrase or "no description"
    if code == ALREADY_REGISTERED or "already registered" in message.lower():
        return DarajaError(
            f"M-Pesa already has callback URLs registered for this short code ({code or status}: {message}). "
            "Production registration is one-time: change or delete the URLs in Daraja's self-service "
            "portal (URL management), then register again.",
            permanent=True,
            code=code or ALREADY_REGISTERED,
            http_status=status,
        )
    if code == SPIKE_ARREST:
        return DarajaError(
            f"Daraja is throttling this app ({code} {message}): wait before trying {operation} again",
            permanent=False,
            code=code,
            http_status=status,
        )
    if _is_product_mismatch(code, message):
        return DarajaError(
            f"Daraja refused {operation} ({code or status}: {message}): the Daraja app is not subscribed "
            "to this API product or version",
            permanent=True,
            code=code or PRODUCT_MISMATCH,
            http_status=status,
        )
    permanent = not (status in (408, 429) or status >= 500)
    return DarajaError(
        f"Daraja refused {operation} (HTTP {status}, {code or 'no code'}: {message})",
        permanent=permanent,
        code=code,
        http_status=status,
    )


def _require_accepted(answer: dict[str, Any], operation: str, *, ok: tuple[str, ...] = ("0",)) -> None:
    code = _code(answer)
    if code not in ok:
        raise DarajaError(
            f"Daraja did not accept {operation} ({code or 'no code'}: {_message(answer) or 'no description'})",
            permanent=True,
            code=code,
            http_status=200,
        )
