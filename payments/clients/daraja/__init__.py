"""Safaricom Daraja (the M-Pesa API): OAuth, C2B URL registration and simulation, recovery queries.

One class, ``DarajaClient``, and one error, ``DarajaError`` (``permanent`` says whether retrying the same
call can help). The access token lives in Django's shared cache (Redis in production) because Daraja
invalidates the previous token whenever a new one is issued: every process must use the same one.
Logs carry operations, HTTP statuses and Daraja's codes; never the secret, the token or a full phone number.
"""

from payments.clients.daraja.client import (
    DEFAULT_PRODUCTION_URL,
    DEFAULT_SANDBOX_URL,
    DEFAULT_TIMEOUT,
    EMULATOR_MIN_TIMEOUT,
    LOCAL,
    PRODUCTION,
    SANDBOX,
    DarajaClient,
    PullPage,
    RegisterResult,
)
from payments.clients.daraja.client import _token_ttl as _token_ttl  # the tests check the refresh margin
from payments.clients.daraja.errors import (
    ALREADY_REGISTERED,
    INVALID_TOKEN,
    PRODUCT_MISMATCH,
    PULL_NO_TRANSACTIONS,
    PULL_OK,
    SPIKE_ARREST,
    DarajaError,
)
from payments.clients.daraja.inputs import API_VERSIONS, COMMAND_IDS, MSISDN_FORMATS, NAIROBI, RESPONSE_TYPES
from payments.clients.daraja.urls import FORBIDDEN_URL_WORDS, TUNNEL_HOST_SUFFIXES, callback_url_problem

__all__ = [
    "ALREADY_REGISTERED",
    "API_VERSIONS",
    "COMMAND_IDS",
    "DEFAULT_PRODUCTION_URL",
    "DEFAULT_SANDBOX_URL",
    "DEFAULT_TIMEOUT",
    "EMULATOR_MIN_TIMEOUT",
    "FORBIDDEN_URL_WORDS",
    "INVALID_TOKEN",
    "LOCAL",
    "MSISDN_FORMATS",
    "NAIROBI",
    "PRODUCTION",
    "PRODUCT_MISMATCH",
    "PULL_NO_TRANSACTIONS",
    "PULL_OK",
    "RESPONSE_TYPES",
    "SANDBOX",
    "SPIKE_ARREST",
    "TUNNEL_HOST_SUFFIXES",
    "DarajaClient",
    "DarajaError",
    "PullPage",
    "RegisterResult",
    "callback_url_problem",
]
